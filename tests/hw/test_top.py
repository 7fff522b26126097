"""The whole accelerator in amaranth.sim, bit-exact against the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from doping import golden
from doping.config import AccelConfig
from doping.errors import DopingError
from doping.golden import Requant
from doping.hw.loader import load_words
from doping.synth import random_inputs, synth_layer
from tests.conftest import int8_batch, random_layer
from tests.hw.amaranth_tb import run_top

CONFIGS = {
    "1x1x1": AccelConfig(rows=1, cols=1, lanes=1, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                         max_nnz=2048),
    "2x3x2": AccelConfig(rows=2, cols=3, lanes=2, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                         max_nnz=2048),
    "4x4x3": AccelConfig(rows=4, cols=4, lanes=3, max_m=128, max_n=128, max_factor=128, max_intermediate=512,
                         max_nnz=8192),
}
SHAPES = [  # (m, n, ratio, factor shapes)
    (12, 10, 2, ((3, 2), (4, 5))),
    (30, 14, 3, ((5, 7), (6, 2))),
    (8, 9, None, ((1, 1), (8, 9))),  # 1x1 factor A: random layer, ratio < 1
    (20, 21, 2.5, ((4, 3), (5, 7))),
]


@pytest.mark.parametrize("cfg_name", sorted(CONFIGS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("order", ["AX", "XB"])
def test_top_bit_exact(cfg_name, shape, order):
    cfg = CONFIGS[cfg_name]
    m, n, ratio, factors = shape
    if ratio is None:
        layer = random_layer(np.random.default_rng(5), *factors[0], *factors[1], nnz=20, order=order)
        xs = int8_batch(np.random.default_rng(6), 3, n)
    else:
        layer = synth_layer((m, n), ratio, seed=m + n, factor_shapes=factors, order=order)
        xs = random_inputs(layer, 3, seed=7)
    y, cycles = run_top(cfg, layer, xs, seed=1, x_gap=0.3, y_stall=0.3)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))
    assert len(cycles) == 3


def _layer_with_rows(rng, m1, n1, m2, n2, row_nnz, rq=None):
    """A random layer whose overlay row r has exactly row_nnz[r] nonzeros."""
    base = random_layer(rng, m1, n1, m2, n2, nnz=0, rq=rq)
    n = n1 * n2
    cols = [np.sort(rng.choice(n, size=k, replace=False)) for k in row_nnz]
    rowptr = np.concatenate([[0], np.cumsum(row_nnz)]).astype(np.int64)
    base.rowptr, base.cols = rowptr, np.concatenate(cols).astype(np.int64)
    base.vals = rng.integers(-128, 128, size=int(rowptr[-1])).astype(np.int8)
    return base.validate()


@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_gather_empty_lanes_rows_and_full_rows(rng, lanes):
    cfg = AccelConfig(rows=2, cols=2, lanes=lanes, max_m=64, max_n=64, max_factor=64, max_intermediate=64,
                      max_nnz=2048)
    # 6 rows with 8 lanes: two lanes own nothing; empty rows, full rows (all 12 columns), one nonzero
    row_nnz = [0, 12, 1, 0, 12, 5]
    rq = (Requant(1 << 14, 18), Requant(1 << 14, 14), Requant(1 << 14, 21))
    layer = _layer_with_rows(rng, 2, 3, 3, 4, row_nnz, rq=rq)
    xs = int8_batch(rng, 2, layer.n)
    y, _ = run_top(cfg, layer, xs, seed=3, y_stall=0.5)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))


def test_requant_saturation_and_int8_limits(rng):
    cfg = CONFIGS["2x3x2"]
    # huge multipliers: the intermediate, the overlay alignment and the output all saturate
    layer = random_layer(rng, 3, 2, 4, 5, nnz=40, rq=(Requant(32767, 0), Requant(32767, 0), Requant(32767, 0)))
    layer.a[:] = -128
    xs = np.stack([np.full(layer.n, -128, np.int8), np.full(layer.n, 127, np.int8), int8_batch(rng, 1, layer.n)[0]])
    tr = golden.trace(layer, xs)
    assert tr.clipped["t"] > 0 and tr.clipped["y"] > 0
    y, _ = run_top(cfg, layer, xs)
    np.testing.assert_array_equal(y, tr.y)


def test_capacity_error_names_what_does_not_fit():
    layer = synth_layer((2600, 1300), 25, seed=0)
    with pytest.raises(DopingError, match=r"outputs m 2600 > 64.*inputs n 1300 > 64"):
        load_words(layer, CONFIGS["2x3x2"])


def test_gather_outlasting_the_kronecker_phases(rng):
    """Dense overlay rows on a tiny Kronecker part: the lanes are still accumulating when G2 ends,
    and the input window (16 elements) fills, so x is back-pressured by the slowest lane."""
    cfg = AccelConfig(rows=1, cols=5, lanes=1, max_m=80, max_n=64, max_factor=256, max_intermediate=512,
                      max_nnz=8192)
    rq = (Requant(1 << 14, 14), Requant(1 << 14, 14), Requant(1 << 14, 22))
    layer = _layer_with_rows(rng, 1, 24, 5, 1, [1, 24, 17, 24, 22], rq=rq)
    layer.a[:] = 0
    xs = int8_batch(rng, 2, layer.n)
    y, cycles = run_top(cfg, layer, xs, seed=2, y_stall=0.2)
    np.testing.assert_array_equal(y, golden.forward(layer, xs))


def test_resident_layers_switch_by_registers_alone():
    """Two layers loaded once into their own regions; switching between them is the register
    words only, in any order, bit-exact (also a layer without a Kronecker part beside a DKP one)."""
    from dataclasses import replace

    from doping.golden import forward
    from doping.hw.loader import register_words
    from doping.synth import synth_method
    from tests.hw.amaranth_tb import run_phases

    cfg = replace(CONFIGS["2x3x2"], resident_layers=3)
    first = synth_layer((24, 20), 3, seed=5, name="first")
    (second,) = synth_method("prune", (20, 24), 4, seed=6, name="second")
    for layer in (first, second):
        cfg.check(layer)
    xs1, xs2 = random_inputs(first, 2, seed=1), random_inputs(second, 2, seed=2)
    # the last register words written decide which layer runs: load the other layer first
    phases = [(load_words(second, cfg, 2) + load_words(first, cfg, 0), first.m, xs1),
              (register_words(second, cfg, 2), second.m, xs2),
              (register_words(first, cfg, 0), first.m, xs1[::-1])]
    outs, _ = run_phases(cfg, phases, y_stall=0.2)
    assert np.array_equal(outs[0][0], forward(first, xs1))
    assert np.array_equal(outs[1][0], forward(second, xs2))
    assert np.array_equal(outs[2][0], forward(first, xs1[::-1]))
