"""The overlay layout of hw/loader.py: balanced row assignment, column-major lane streams."""

from __future__ import annotations

import numpy as np
import pytest

from doping.config import AccelConfig, ceil_div
from doping.hw.loader import lane_plan
from doping.synth import synth_layer
from tests.hw.test_top import _layer_with_rows


@pytest.mark.parametrize("lanes", [1, 3, 8, 64])
def test_lane_plan_is_balanced_column_major_and_complete(lanes):
    layer = synth_layer((260, 130), 6, seed=lanes)
    cfg = AccelConfig(lanes=lanes, max_m=260, max_n=130)
    plan = lane_plan(layer, cfg)
    per_row = np.maximum(np.diff(layer.rowptr), 1)
    counts = plan.counts()
    assert sum(counts) == per_row.sum()
    # greedy longest-first: no lane exceeds the mean by more than the longest row
    assert max(counts) <= per_row.sum() / lanes + per_row.max()
    assert np.bincount(plan.lane, minlength=lanes).max() <= cfg.memories["ov_acc"].depth
    assert cfg.memories["ov_acc"].depth >= ceil_div(layer.m, lanes)
    assert len(set(zip(plan.lane.tolist(), plan.slot.tolist()))) == layer.m
    for l, entries in enumerate(plan.entries):
        keys = [(c, s) for c, s, _, _ in entries]
        assert keys == sorted(keys)
        firsts = [s for _, s, _, f in entries if f]
        assert sorted(firsts) == sorted(plan.slot[plan.lane == l].tolist())


def test_lane_plan_balances_skewed_rows(rng):
    # one long row and many short ones: round-robin would give one lane 3x the mean
    layer = _layer_with_rows(rng, 2, 6, 8, 2, [12] + [1] * 7 + [2] * 8)
    plan = lane_plan(layer, AccelConfig(lanes=4, max_m=64, max_n=64))
    assert max(plan.counts()) <= 12
    assert min(plan.counts()) >= 5
