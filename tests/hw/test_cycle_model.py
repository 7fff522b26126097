"""The estimator's cycle model equals the cycles the RTL takes (amaranth.sim), exactly."""

from __future__ import annotations

import pytest

from doping.config import AccelConfig
from doping.estimate import schedule
from doping.synth import random_inputs, synth_layer
from tests.hw.amaranth_tb import run_top

CASES = [  # (rows, cols, lanes), (m, n), ratio, factors, order
    ((2, 3, 2), (12, 10), 2, ((3, 2), (4, 5)), "AX"),
    ((2, 3, 2), (12, 10), 2, ((3, 2), (4, 5)), "XB"),
    ((4, 4, 3), (30, 14), 3, ((5, 7), (6, 2)), "AX"),
    ((1, 1, 1), (20, 21), 2.5, ((4, 3), (5, 7)), "XB"),
    ((3, 2, 5), (20, 21), 1.2, ((4, 3), (5, 7)), "AX"),
    ((4, 4, 2), (36, 24), 10, None, None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1][0]}x{c[1][1]}-{c[4]}")
def test_cycles_equal_rtl(case):
    (r, c, l), shape, ratio, factors, order = case
    cfg = AccelConfig(rows=r, cols=c, lanes=l, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                      max_nnz=4096)
    layer = synth_layer(shape, ratio, seed=sum(shape), factor_shapes=factors, order=order)
    xs = random_inputs(layer, 2, seed=3)
    _, cycles = run_top(cfg, layer, xs)
    s = schedule(layer, cfg)
    assert cycles == [s.cycles, s.cycles]
