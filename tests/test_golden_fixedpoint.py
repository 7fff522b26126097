"""Rounding, saturation and (multiplier, shift) derivation: docs/numerics.md sections 2-3."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from doping import golden
from doping.golden import Requant
from doping.golden.fixedpoint import MULT_MAX, SHIFT_MAX


def test_shift_round_ties_go_up():
    v = np.array([5, -5, 3, -3, 4, -4, 6, -6])  # /2 -> 2.5 -2.5 1.5 -1.5 2 -2 3 -3
    np.testing.assert_array_equal(golden.shift_round(v, 1), [3, -2, 2, -1, 2, -2, 3, -3])
    np.testing.assert_array_equal(golden.shift_round(v, 0), v)


def test_requantise_saturates_both_ends():
    rq = Requant(1, 0)
    np.testing.assert_array_equal(golden.requantise(np.array([-1000, -129, -128, 127, 128, 1000]), rq, 8),
                                  [-128, -128, -128, 127, 127, 127])
    big = np.array([2**31 - 1, -(2**31)], dtype=np.int64)
    np.testing.assert_array_equal(golden.requantise(big, Requant(MULT_MAX, 0), 32), [2**31 - 1, -(2**31)])


@given(st.integers(-(2**31), 2**31 - 1), st.integers(1, MULT_MAX), st.integers(0, SHIFT_MAX))
def test_requantise_matches_exact_rational_rounding(acc, mult, shift):
    exact = acc * mult / 2**shift  # Python floats are exact enough only for the comparison below
    got = int(golden.requantise(np.array([acc]), Requant(mult, shift), 32)[0])
    want = (acc * mult + ((1 << shift) >> 1)) >> shift if shift else acc * mult
    want = min(max(want, -(2**31)), 2**31 - 1)
    assert got == want
    if -(2**31) < want < 2**31 - 1:
        assert abs(got - exact) <= 0.5 + 1e-9 * abs(exact)


@given(st.floats(min_value=1e-9, max_value=30000.0))
def test_requant_from_real_relative_error(r):
    rq = Requant.from_real(r)
    if r >= 2.0 ** (14 - SHIFT_MAX):
        assert abs(rq.real - r) / r <= 2.0**-15


@pytest.mark.parametrize("bad", [(0, 0), (MULT_MAX + 1, 0), (1, -1), (1, SHIFT_MAX + 1)])
def test_requant_range_is_enforced(bad):
    with pytest.raises(ValueError):
        Requant(*bad)
    with pytest.raises(ValueError):
        Requant.from_real(1e6)


def test_weight_quantisation_rounds_half_away_from_zero():
    """numerics.md §8: weights round half away from zero (np.round alone would give 0, 2, -2)."""
    from doping.quantize import quantise_tensor

    got = quantise_tensor(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49, 300.0, -300.0]), 1.0)
    assert got.tolist() == [1, 2, 3, -1, -3, 0, 127, -128]
