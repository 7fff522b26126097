"""W-element beats on x and y (config ``stream_bytes``) in amaranth.sim: bit-exact against the
golden model under random gaps and stalls, ``last`` on each vector's final beat (checked by the
harness), and the cycle model equal to the RTL for vectors back to back."""

from __future__ import annotations

import numpy as np
import pytest

from doping import golden
from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate import schedule
from doping.estimate.cycles import vector_times
from doping.hw.loader import lane_plan
from doping.synth import random_inputs, synth_layer, synth_method
from tests.hw.amaranth_tb import run_top

CASES = [  # (rows, cols, lanes, W), (m, n), ratio, factors, order
    ((2, 3, 2, 2), (12, 10), 2, ((3, 2), (4, 5)), "AX"),  # n2 odd: beats straddle rows of X
    ((2, 3, 2, 2), (12, 10), 2, ((3, 2), (4, 5)), "XB"),
    ((4, 5, 4, 4), (40, 28), 3, ((5, 7), (8, 4)), "AX"),  # C not a power of two: rotations
    ((4, 5, 4, 4), (35, 30), 3, ((5, 6), (7, 5)), "XB"),  # m2 = 7: y beats straddle rows of K
    ((1, 8, 8, 8), (36, 45), 2.5, ((4, 5), (9, 9)), "XB"),  # one row bank: both rows of a beat in it
    ((2, 8, 8, 8), (40, 21), 2, ((5, 7), (8, 3)), "AX"),  # n2 = 3 < W: a beat spans three rows of X
    ((3, 4, 4, 4), (24, 21), 4, None, None),  # pruned: n not a multiple of W, a padded last beat
]


def _config(r, c, l, w):
    return AccelConfig(rows=r, cols=c, lanes=l, stream_bytes=w, max_m=64, max_n=64, max_factor=256,
                       max_intermediate=256, max_nnz=4096)


def _layer(shape, ratio, factors, order):
    if factors is None:
        (layer,) = synth_method("prune", shape, ratio, seed=sum(shape))
        return layer
    return synth_layer(shape, ratio, seed=sum(shape), factor_shapes=factors, order=order)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"W{c[0][3]}-{c[1][0]}x{c[1][1]}-{c[4]}")
def test_wide_streams_bit_exact_under_backpressure(case):
    (r, c, l, w), shape, ratio, factors, order = case
    cfg, layer = _config(r, c, l, w), _layer(shape, ratio, factors, order)
    xs = random_inputs(layer, 3, seed=11)
    y, cycles = run_top(cfg, layer, xs, seed=2, x_gap=0.3, y_stall=0.3)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))
    assert len(cycles) == 3


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"W{c[0][3]}-{c[1][0]}x{c[1][1]}-{c[4]}")
def test_wide_stream_cycles_equal_rtl(case):
    (r, c, l, w), shape, ratio, factors, order = case
    cfg, layer = _config(r, c, l, w), _layer(shape, ratio, factors, order)
    xs = random_inputs(layer, 3, seed=12)
    y, cycles = run_top(cfg, layer, xs)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))
    assert cycles == [t["latency"] for t in vector_times(layer, cfg, 3)]
    s = schedule(layer, cfg)
    assert s.phases["RECV"] == -(-layer.n // w) and s.phases["SEND"] > -(-layer.m // w)


def test_lane_sets_give_a_beat_distinct_lanes():
    cfg = _config(2, 4, 8, 4)
    layer = _layer((40, 28), 3, ((5, 7), (8, 4)), "AX")
    plan = lane_plan(layer, cfg)
    assert np.array_equal(plan.lane % 4, np.arange(layer.m) % 4)


def test_stream_problems_name_the_shape():
    with pytest.raises(DopingError, match="stream_bytes 8 > cols 4"):
        _config(2, 4, 8, 8).check(_layer((32, 24), 2, ((4, 3), (8, 8)), "AX"))
    with pytest.raises(DopingError, match="n2 3 < stream_bytes 4"):
        _config(2, 4, 4, 4).check(_layer((40, 21), 2, ((5, 7), (8, 3)), "XB"))
    (pruned,) = synth_method("prune", (24, 21), 4, seed=1)
    _config(2, 2, 8, 8).check(pruned)  # no Kronecker part: any shape


@pytest.mark.parametrize("fields,message", [
    (dict(stream_bytes=3), "stream_bytes must be one of 1, 2, 4, 8"),
    (dict(stream_bytes=4, lanes=6), "6 lanes do not split into stream_bytes = 4 sets"),
])
def test_stream_bytes_config_errors(fields, message):
    with pytest.raises(DopingError, match=message):
        AccelConfig(**fields)
