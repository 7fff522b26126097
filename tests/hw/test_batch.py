"""Batch mode (config ``batch`` B): B vectors through the first Kronecker GEMM and the gather
lanes at once, in amaranth.sim — bit-exact against the golden model under random gaps and stalls, per-vector cycles
equal to the cycle model for batches back to back, a reload between batches, and the
utilisation the model projects from it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from doping import golden
from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate import schedule
from doping.estimate.cycles import vector_times
from doping.estimate.model import estimate
from doping.hw.loader import load_words
from doping.synth import random_inputs, synth_layer, synth_method
from tests.hw.amaranth_tb import run_phases, run_top
from tests.hw.test_wide_streams import _layer  # a CASES row's layer: synthetic DKP, or pruned

CASES = [  # (rows, cols, lanes, W, B), (m, n), ratio, factors, order
    ((2, 3, 2, 1, 2), (12, 10), 2, ((3, 2), (4, 5)), "AX"),
    ((2, 3, 2, 1, 2), (12, 10), 2, ((3, 2), (4, 5)), "XB"),
    ((4, 5, 4, 4, 4), (40, 28), 3, ((5, 7), (8, 4)), "AX"),  # C not a power of two: rotations of X'
    ((4, 5, 4, 4, 4), (35, 30), 3, ((5, 6), (7, 5)), "XB"),  # XB beats straddle rows of the stacked X'
    ((3, 2, 1, 1, 2), (20, 21), 1.2, ((4, 3), (5, 7)), "AX"),  # gather-bound: a batch's first G2 waits on SEND
    ((4, 5, 4, 1, 4), (60, 12), 3, ((6, 6), (10, 2)), "AX"),  # SEND-bound: later G2s wait on SEND
    ((2, 2, 2, 2, 8), (24, 12), 3, ((3, 2), (8, 6)), "AX"),  # n2 = 6: G1 grows from 6 to 48 columns
    ((2, 2, 2, 2, 8), (24, 12), 3, ((3, 2), (8, 6)), "XB"),
    ((4, 4, 2, 1, 4), (36, 24), 10, None, None),  # pruned: no first GEMM; the lanes still take a batch
]


def _config(r, c, l, w, b):
    return AccelConfig(rows=r, cols=c, lanes=l, stream_bytes=w, batch=b, max_m=64, max_n=64, max_factor=256,
                       max_intermediate=256, max_nnz=4096)


def _id(c):
    return f"B{c[0][4]}-W{c[0][3]}-{c[1][0]}x{c[1][1]}-{c[4]}"


def test_cases_cover_the_kbuf_waits():
    """Some batch's first G2 waits after SETTLE, and some later G2 after the one before, for SEND
    to free a kbuf half (the GEMM FSM's NEXT state from both sides)."""
    from doping.estimate.cycles import gemms
    from doping.arch import G1_SETTLE

    first = later = 0
    for (r, c, l, w, b), shape, ratio, factors, order in CASES:
        cfg, layer = _config(r, c, l, w, b), _layer(shape, ratio, factors, order)
        if not layer.has_kp:
            continue
        g2 = gemms(layer, cfg)[1].cycles(cfg)
        t = vector_times(layer, cfg, 2 * b)
        first += sum(t[v]["g2_seen"] > t[v]["g1_seen"] + G1_SETTLE + g2 for v in range(0, 2 * b, b))
        later += sum(t[v]["g2_seen"] > t[v - 1]["g2_seen"] + 1 + g2 for v in range(2 * b) if v % b)
    assert first and later


@pytest.mark.parametrize("case", [CASES[i] for i in (4, 7, 8)], ids=_id)  # each order, B = 2, 4, 8, a pruned layer
def test_batch_bit_exact_under_backpressure(case):
    (r, c, l, w, b), shape, ratio, factors, order = case
    cfg, layer = _config(r, c, l, w, b), _layer(shape, ratio, factors, order)
    xs = random_inputs(layer, 2 * b, seed=11)
    y, cycles = run_top(cfg, layer, xs, seed=2, x_gap=0.3, y_stall=0.3)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))
    assert len(cycles) == 2 * b


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_batch_cycles_equal_rtl(case):
    """Two batches back to back: every vector's latency (first x .. last y) equals the model's."""
    (r, c, l, w, b), shape, ratio, factors, order = case
    cfg, layer = _config(r, c, l, w, b), _layer(shape, ratio, factors, order)
    xs = random_inputs(layer, 2 * b, seed=12)
    y, cycles = run_top(cfg, layer, xs)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))
    assert cycles == [t["latency"] for t in vector_times(layer, cfg, 2 * b)]
    assert cycles[0] == schedule(layer, cfg).cycles


def test_batch_reload_between_batches():
    """A batch of one layer, then another layer loaded (other shapes, the other order) and its
    batch: the batch counters and the X' layout start afresh."""
    cfg = _config(2, 3, 2, 1, 4)
    first = _layer((12, 10), 2, ((3, 2), (4, 5)), "AX")
    second = _layer((20, 21), 1.5, ((4, 3), (5, 7)), "XB")
    xs1, xs2 = random_inputs(first, 4, seed=1), random_inputs(second, 8, seed=2)
    outs, _ = run_phases(cfg, [(load_words(first, cfg), first.m, xs1), (load_words(second, cfg), second.m, xs2)],
                         seed=3, x_gap=0.2, y_stall=0.2)
    np.testing.assert_array_equal(outs[0][0], golden.forward(first, xs1))
    np.testing.assert_array_equal(outs[1][0], golden.forward(second, xs2))


def test_batch_fills_the_array_where_n2_is_small():
    """The 2600x1300 @25x Kronecker-heavy shape (A 325x325, B 8x4, AX: n2 = 4 fills half of the
    8 columns): the first GEMM of B = 8 vectors has 32 columns, and the model's array utilisation
    in the Kronecker phases rises from B = 1 to over 90 % at B = 8; energy per vector falls."""
    from dataclasses import replace

    layer = synth_layer((2600, 1300), 25, seed=1, factor_shapes=((325, 325), (8, 4)), order="AX")
    base = replace(AccelConfig(), stream_bytes=4, max_intermediate=325 * 4, max_factor=325 * 325)
    one, eight = estimate(layer, base), estimate(layer, replace(base, batch=8))
    assert one.utilisation.array_kp < 0.6 < 0.9 < eight.utilisation.array_kp
    assert eight.interval_cycles < one.interval_cycles and eight.energy_pj < one.energy_pj


def test_batch_divides_the_gather_where_the_lanes_bind():
    """Pruned 2600x1300 @25x on the default config (W = 4): the lanes bind at B = 1 (nnz / L
    cycles a vector); at B = 4 an overlay entry read feeds 4 MACs, so the interval falls by
    nearly 4x, overlay reads per vector by 4x, and the lanes stay as busy per entry slot."""
    from dataclasses import replace

    (layer,) = synth_method("prune", (2600, 1300), 25, seed=1)
    base = replace(AccelConfig(), stream_bytes=4)
    one, four = estimate(layer, base), estimate(layer, replace(base, batch=4))
    assert max(one.utilisation.interval, key=one.utilisation.interval.get) == "GATHER"
    assert one.interval_cycles >= one.bound >= layer.nnz / base.lanes
    assert four.bound == max(-(-layer.nnz // (4 * base.lanes)), 2600 // 4)  # now y's 650 beats
    assert four.interval_cycles < 0.3 * one.interval_cycles
    assert four.accesses["overlay"]["reads"] == pytest.approx(one.accesses["overlay"]["reads"] / 4)
    assert four.utilisation.lanes == pytest.approx(one.utilisation.lanes, rel=0.05)
    assert four.energy_pj < one.energy_pj


def test_batch_config_errors():
    with pytest.raises(DopingError, match="batch must be one of 1, 2, 4, 8"):
        AccelConfig(batch=3)
    with pytest.raises(DopingError, match="needs batch = 1"):
        AccelConfig(lstm_cell=1, batch=2)
    layer = _layer((40, 30), 2, ((5, 6), (8, 5)), "AX")
    with pytest.raises(DopingError, match="n2 5 is not a multiple of stream_bytes 2 at batch 4"):
        _config(2, 4, 4, 2, 4).check(layer)
    _config(2, 4, 4, 2, 1).check(layer)  # one vector at a time: any n2
    # the activation memories hold a batch's X' and first-GEMM result, the input buffer 2B vectors
    # (a bank per vector of a batch), the row sums B sums a word
    one, four = _config(2, 4, 4, 2, 1).memories, _config(2, 4, 4, 2, 4).memories
    assert all(four[k].depth == 4 * one[k].depth for k in ("act_p", "act_q"))
    assert four["x_buf"] == replace(one["x_buf"], banks=4 * one["x_buf"].banks)
    assert four["ov_acc"] == replace(one["ov_acc"], width=4 * one["ov_acc"].width)
    assert all(four[k] == one[k] for k in one if k not in ("act_p", "act_q", "x_buf", "ov_acc"))


def test_per_token_cost_needs_one_vector_at_a_time():
    """A token of one sequence cannot fill a batch: per-token pricing refuses a batch config for
    any model (the lanes batch pruned layers too) and prices the same at batch 1."""
    from doping.estimate.model import per_token

    kron = _layer((12, 10), 2, ((3, 2), (4, 5)), "AX")
    (pruned,) = synth_method("prune", (12, 10), 2, seed=1)
    for layers in ([kron, kron], [pruned, pruned]):
        with pytest.raises(DopingError, match="needs batch = 1, not 4"):
            per_token(layers, _config(2, 3, 2, 1, 4))
        assert per_token(layers, _config(2, 3, 2, 1, 1)).cycles_per_token > 0
