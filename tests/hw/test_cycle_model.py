"""The estimator's cycle model equals the cycles the RTL takes (amaranth.sim), exactly, for a
vector from idle and for vectors streamed back to back."""

from __future__ import annotations

import pytest

from doping.config import AccelConfig
from doping.estimate import schedule
from doping.estimate.cycles import gather_timing, vector_times
from doping.synth import random_inputs, synth_layer
from tests.hw.amaranth_tb import run_top

CASES = [  # (rows, cols, lanes), (m, n), ratio, factors, order
    ((2, 3, 2), (12, 10), 2, ((3, 2), (4, 5)), "AX"),
    ((2, 3, 2), (12, 10), 2, ((3, 2), (4, 5)), "XB"),
    ((4, 4, 3), (30, 14), 3, ((5, 7), (6, 2)), "AX"),
    ((1, 1, 1), (20, 21), 2.5, ((4, 3), (5, 7)), "XB"),
    ((3, 2, 5), (20, 21), 1.2, ((4, 3), (5, 7)), "AX"),
    ((4, 4, 2), (36, 24), 10, None, None),
    ((4, 4, 2), (40, 30), 1.05, ((2, 3), (20, 10)), "XB"),  # gather-bound: lanes outlast G2
    ((1, 2, 1), (12, 40), 1.2, ((2, 4), (6, 10)), "AX"),  # one lane: the broadcast waits on its window
    ((2, 2, 64), (40, 20), 3, ((4, 4), (10, 5)), "XB"),  # more lanes than needed: empty lanes
    ((4, 4, 3), (14, 45), 10.6, ((2, 15), (7, 3)), "AX"),  # lanes done before the vector's RECV is
]


def _config(r, c, l):
    return AccelConfig(rows=r, cols=c, lanes=l, max_m=64, max_n=64, max_factor=256, max_intermediate=256,
                       max_nnz=4096)


def test_cases_cover_every_regime():
    """The cases include a vector whose lanes outlast the Kronecker phases, one whose lane
    broadcast is held back by the window of the slowest lane, one whose lanes are done before
    its last x arrives, and a GEMM whose tiles drain while the next ones capture."""
    gather_bound = window_bound = early = overlapped = 0
    for (r, c, l), shape, ratio, factors, order in CASES:
        layer = synth_layer(shape, ratio, seed=sum(shape), factor_shapes=factors, order=order)
        s = schedule(layer, _config(r, c, l))
        # tiles closer than one flush + drain: a tile drains from one shadow bank while the next
        # ones capture into the other
        overlapped += any(g.tiles > 2 and g.spacing(_config(r, c, l)) < r + c - 1 + g.drain for g in s.gemms)
        gather_bound += s.gather_end > s.phases["RECV"] + s.phases["G1"] + s.phases["G2"]
        arrive, _ = gather_timing(layer, _config(r, c, l))
        window_bound += arrive[-1] > layer.n + 1
        early += s.gather_end < layer.n
    assert gather_bound and window_bound and early and overlapped


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1][0]}x{c[1][1]}-{c[4]}")
def test_cycles_equal_rtl(case):
    (r, c, l), shape, ratio, factors, order = case
    cfg = _config(r, c, l)
    layer = synth_layer(shape, ratio, seed=sum(shape), factor_shapes=factors, order=order)
    xs = random_inputs(layer, 3, seed=3)
    _, cycles = run_top(cfg, layer, xs)
    # three vectors back to back: the first from idle, then overlapped with their predecessors
    assert cycles == [t["latency"] for t in vector_times(layer, cfg, 3)]
    assert cycles[0] == schedule(layer, cfg).cycles


@pytest.mark.parametrize("method,shape,ratio", [("prune", (24, 20), 4), ("prune", (10, 30), 2), ("dense", (12, 10), 1),
                                                ("lmf", (24, 20), 3)])
def test_baseline_methods_bit_exact_and_cycles_equal_rtl(method, shape, ratio):
    """Pruned (no Kronecker part: the GEMM engine passes each vector at once), dense (A = W,
    B = [1]) and LMF (two chained dense layers, U fed with V's outputs from the RTL) on the same
    design: outputs equal the golden model's, with and without back-pressure, and cycles the model's."""
    import numpy as np

    from doping import golden
    from doping.synth import synth_method

    cfg = AccelConfig(rows=4, cols=3, lanes=3, max_m=64, max_n=64, max_factor=512, max_intermediate=256,
                      max_nnz=4096)
    layers = synth_method(method, shape, ratio, seed=1)
    prev = None
    for layer in layers:
        xs = random_inputs(layer, 3, seed=2) if layer.input is None else prev
        got, cycles = run_top(cfg, layer, xs)
        assert np.array_equal(got, golden.forward(layer, xs))
        assert cycles == [t["latency"] for t in vector_times(layer, cfg, 3)]
        stressed, _ = run_top(cfg, layer, xs, seed=5, x_gap=0.3, y_stall=0.3)
        assert np.array_equal(stressed, got)
        prev = got


def _scalesim_os_fold(rows, cols, k):
    """SCALE-Sim's output-stationary cycles for one fold (Samajdar et al., "SCALE-Sim", 2018,
    §III): 2*Sr + Sc + T - 2, with Sr x Sc the array and T the reduction length."""
    return 2 * rows + cols + k - 2


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1][0]}x{c[1][1]}-{c[4]}")
def test_gemm_phases_against_scalesim(case):
    """One tile costs SCALE-Sim's fold cycles plus one (the memory read register in front of the
    array); a row drain is SCALE-Sim's Sr, a column drain its Sc with rows and columns swapped.
    Several tiles cost less than SCALE-Sim's folds in series, since FLUSH and DRAIN of one tile
    run under the next tile's FEED."""
    from doping.estimate.cycles import Gemm, gemms

    (r, c, l), shape, ratio, factors, order = case
    cfg = _config(r, c, l)
    layer = synth_layer(shape, ratio, seed=sum(shape), factor_shapes=factors, order=order)
    for g in gemms(layer, cfg):
        fold = _scalesim_os_fold(r, c, g.k) if g.drain == r else _scalesim_os_fold(c, r, g.k)
        assert Gemm(g.rows, g.cols, g.k, g.drain, 1).cycles(cfg) == fold + 1
        assert g.cycles(cfg) <= g.tiles * (fold + 1)
        assert (g.cycles(cfg) == g.tiles * (fold + 1)) == (g.tiles == 1)


@pytest.mark.parametrize("resident", [True, False])
def test_per_token_cycles_equal_rtl(resident):
    """A token through two layers: with both resident a layer costs its register words, its
    latency and the handover; with one held, its whole reload instead — as the RTL takes."""
    from dataclasses import replace

    from doping.estimate.model import per_token
    from doping.hw.loader import load_words, register_words
    from doping.synth import synth_method
    from tests.hw.amaranth_tb import run_phases

    cfg = replace(_config(2, 3, 2), resident_layers=2 if resident else 1)
    first = synth_layer((24, 20), 3, seed=5, name="first")
    (second,) = synth_method("prune", (20, 24), 4, seed=6, name="second")
    x1, x2 = random_inputs(first, 1, seed=1), random_inputs(second, 1, seed=2)
    if resident:
        setup = load_words(second, cfg, 1) + load_words(first, cfg, 0)
        words = [register_words(second, cfg, 1), register_words(first, cfg, 0)]
    else:
        setup, words = load_words(first, cfg), [load_words(second, cfg), load_words(first, cfg)]
    phases = [(setup, first.m, x1), (words[0], second.m, x2), (words[1], first.m, x1)]
    _, ends = run_phases(cfg, phases)
    t = per_token([second, first], cfg)
    assert t.resident == resident
    assert [b - a for a, b in zip(ends, ends[1:])] == [r.cycles for r in t.layers]
    assert ends[2] - ends[0] == t.cycles_per_token
