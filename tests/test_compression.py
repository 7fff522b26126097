"""Compression accounting and the factor-shape rule, checked by hand on the PTB-medium gate matrix."""

from __future__ import annotations

import pytest

from doping.compression import account, choose_factor_shapes, overlay_budget
from doping.errors import DopingError


def test_ptb_medium_gate_matrix_by_hand():
    shapes = choose_factor_shapes(2600, 1300)
    assert shapes == ((200, 10), (13, 130))  # 2000 + 1690 = 3690 parameters, the minimum
    nnz = overlay_budget(2600, 1300, 25, shapes)
    assert nnz == 3_380_000 // 25 - 3690 == 131_510
    c = account(2600, 1300, shapes, nnz)
    assert c.params == 135_200 and c.param_ratio == 25.0
    # values 135,200 x 8 b; columns 131,510 x ceil(log2 1300)=11 b; row pointers 2,601 x ceil(log2 131,511)=18 b
    assert c.stored_bits == 135_200 * 8 + 131_510 * 11 + 2_601 * 18 == 2_575_028
    assert c.dense_bits == 3_380_000 * 8
    assert c.bit_ratio == pytest.approx(27_040_000 / 2_575_028)


def test_rule_minimises_factor_parameters():
    for m, n in [(12, 8), (30, 7), (64, 64), (1, 1), (13, 17)]:
        (m1, n1), (m2, n2) = choose_factor_shapes(m, n)
        best = min(a * b + (m // a) * (n // b) for a in range(1, m + 1) if m % a == 0
                   for b in range(1, n + 1) if n % b == 0)
        assert m1 * n1 + m2 * n2 == best and m1 * m2 == m and n1 * n2 == n


def test_ratio_beyond_factors_is_an_error():
    with pytest.raises(DopingError, match="largest ratio they allow is 916.0"):
        overlay_budget(2600, 1300, 1000, choose_factor_shapes(2600, 1300))
    with pytest.raises(DopingError, match=">= 1"):
        overlay_budget(10, 10, 0.5, ((2, 2), (5, 5)))
