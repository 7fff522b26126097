"""Golden model against independent int64 oracles: np.kron and a dense S @ x."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from doping import golden
from tests.conftest import int8_batch, random_layer

dims = st.integers(min_value=1, max_value=9)


@settings(max_examples=150, deadline=None)
@given(m1=dims, n1=dims, m2=dims, n2=dims, order=st.sampled_from(golden.ORDERS),
       batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_kron_path_without_requant_equals_np_kron(m1, n1, m2, n2, order, batch, seed):
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, m1, n1, m2, n2, nnz=0, order=order)
    x = int8_batch(rng, batch, layer.n)
    want = x.astype(np.int64) @ np.kron(layer.a.astype(np.int64), layer.b.astype(np.int64)).T
    got = golden.kron_path(layer, x, requantise_intermediate=False)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_kron_path_one_by_one_factors(rng):
    layer = random_layer(rng, 1, 1, 1, 1, nnz=0)
    x = int8_batch(rng, 3, 1)
    np.testing.assert_array_equal(golden.kron_path(layer, x, requantise_intermediate=False),
                                  x.astype(np.int64) * int(layer.a[0, 0]) * int(layer.b[0, 0]))


@settings(max_examples=150, deadline=None)
@given(m1=dims, n1=dims, m2=dims, n2=dims, density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
       batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_overlay_path_equals_dense(m1, n1, m2, n2, density, batch, seed):
    rng = np.random.default_rng(seed)
    m, n = m1 * m2, n1 * n2
    layer = random_layer(rng, m1, n1, m2, n2, nnz=int(round(density * m * n)))
    x = int8_batch(rng, batch, n)
    want = x.astype(np.int64) @ layer.dense_overlay().T
    np.testing.assert_array_equal(golden.overlay_path(layer, x), want)


def test_overlay_empty_and_empty_rows(rng):
    empty = random_layer(rng, 3, 2, 2, 3, nnz=0)
    x = int8_batch(rng, 2, empty.n)
    np.testing.assert_array_equal(golden.overlay_path(empty, x), np.zeros((2, empty.m), np.int64))
    layer = random_layer(rng, 4, 2, 2, 4, nnz=5)  # 8 rows, 5 nonzeros: at least 3 empty rows
    assert np.count_nonzero(layer.row_nnz() == 0) >= 3
    x = int8_batch(rng, 2, layer.n)
    np.testing.assert_array_equal(golden.overlay_path(layer, x), x.astype(np.int64) @ layer.dense_overlay().T)


@settings(max_examples=60, deadline=None)
@given(m1=dims, n1=dims, m2=dims, n2=dims, order=st.sampled_from(golden.ORDERS), seed=st.integers(0, 2**32 - 1))
def test_forward_composes_documented_steps(m1, n1, m2, n2, order, seed):
    """forward == sat8(rq_y(sat32(kp(rq_t(first)) + sat32(rq_ov(S x))))), spelled out from the spec."""
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, m1, n1, m2, n2, order=order)
    x = int8_batch(rng, 3, layer.n)
    kp = golden.kron_path(layer, x)
    ov = golden.overlay_path(layer, x)

    def rq(v, r, bits):
        v = v.astype(object) * r.multiplier
        v = (v + (1 << (r.shift - 1))) // (1 << r.shift) if r.shift else v
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return np.array([[min(max(int(e), lo), hi) for e in row] for row in v], dtype=np.int64)

    acc = rq(kp + rq(ov, layer.ov_rq, 32), golden.Requant(1, 0), 32)
    np.testing.assert_array_equal(golden.forward(layer, x), rq(acc, layer.y_rq, 8).astype(np.int8))
    assert golden.forward(layer, x).dtype == np.int8
