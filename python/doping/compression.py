"""Kronecker factor shapes for a layer and budget, and compression accounting.

Accounting (docs/pack-format.md, "Compression"): the *parameter* ratio is
``m*n / (m1*n1 + m2*n2 + nnz)``. The *stored-bit* ratio compares the dense matrix at the pack's
value width with everything the pack stores for the layer: factor values, overlay values, one
column index per nonzero of ceil(log2(n)) bits, and m+1 row pointers of ceil(log2(nnz+1)) bits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from doping.errors import DopingError

VALUE_BITS = 8


def divisors(k: int) -> list[int]:
    return [d for d in range(1, k + 1) if k % d == 0]


def choose_factor_shapes(m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The factor-shape rule: A (m1 x n1), B (m2 x n2) with m1*m2 = m, n1*n2 = n that minimise
    the factor parameter count m1*n1 + m2*n2, leaving the largest share of a budget to the overlay.

    Ties go to the pair with fewer Kronecker MACs per vector, then to the larger m1, so the rule
    is deterministic. For 2600x1300 it gives A 200x10, B 13x130 (3,690 parameters).
    """
    if m < 1 or n < 1:
        raise DopingError(f"layer shape {m}x{n} must be positive")
    best = None
    for m1 in divisors(m):
        for n1 in divisors(n):
            m2, n2 = m // m1, n // n1
            params = m1 * n1 + m2 * n2
            macs = min(m1 * n1 * n2 + m1 * n2 * m2, n1 * n2 * m2 + m1 * n1 * m2)
            key = (params, macs, -m1, -n1)
            if best is None or key < best[0]:
                best = (key, ((m1, n1), (m2, n2)))
    return best[1]


def largest_factor_shapes_within(m: int, n: int, budget: int):
    """Factor shapes with the most parameters that still fit ``budget`` (the KP-only baseline)."""
    best = None
    for m1 in divisors(m):
        for n1 in divisors(n):
            p = m1 * n1 + (m // m1) * (n // n1)
            if p <= budget and (best is None or p > best[0]):
                best = (p, ((m1, n1), (m // m1, n // n1)))
    if best is None:
        raise DopingError(f"no Kronecker factorisation of {m}x{n} fits {budget} parameters")
    return best[1]


def factor_shapes_for_share(m: int, n: int, ratio: float, share: float):
    """Factor shapes giving the Kronecker part about ``share`` of a ratio's parameter budget
    floor(m*n/ratio): the factorisation whose parameter count is nearest to share*budget without
    exceeding the budget; ties go to the larger Kronecker rank bound min(m1,n1)*min(m2,n2)."""
    if not (0.0 < share < 1.0):
        raise DopingError(f"Kronecker share must be in (0, 1), got {share}")
    budget = math.floor(m * n / ratio)
    goal = share * budget
    best = None
    for m1 in divisors(m):
        for n1 in divisors(n):
            m2, n2 = m // m1, n // n1
            p = m1 * n1 + m2 * n2
            if p > budget:
                continue
            key = (abs(p - goal), -min(m1, n1) * min(m2, n2), -m1, -n1)
            if best is None or key < best[0]:
                best = (key, ((m1, n1), (m2, n2)))
    if best is None:
        raise DopingError(f"no Kronecker factorisation of {m}x{n} fits {budget} parameters")
    return best[1]


def parse_factor_shapes(text: str):
    """``"M1xN1,M2xN2"`` -> ((M1, N1), (M2, N2)); a clear error for anything else."""
    try:
        a, b = text.split(",")
        (m1, n1), (m2, n2) = (tuple(int(v) for v in part.lower().split("x")) for part in (a, b))
    except ValueError:
        raise DopingError(f"factor shapes must look like M1xN1,M2xN2 (e.g. 40x20,20x20), got {text!r}") from None
    if min(m1, n1, m2, n2) < 1:
        raise DopingError(f"factor shapes must be positive, got {text!r}")
    return (m1, n1), (m2, n2)


def sparse_bits(m: int, n: int, nnz: int, value_bits: int = VALUE_BITS) -> int:
    """Stored bits of an m x n CSR matrix with ``nnz`` entries: values, ceil(log2 n)-bit column
    indices and m+1 row pointers of ceil(log2(nnz+1)) bits."""
    return nnz * (value_bits + index_bits(n)) + (m + 1) * index_bits(nnz + 1)


def overlay_budget(m: int, n: int, ratio: float, factor_shapes) -> int:
    """Overlay nonzeros that a parameter compression ``ratio`` leaves after the factors.

    Raises DopingError when the factors alone already exceed the budget.
    """
    if not (ratio >= 1.0 and math.isfinite(ratio)):
        raise DopingError(f"compression ratio must be a finite number >= 1, got {ratio}")
    (m1, n1), (m2, n2) = factor_shapes
    kp = m1 * n1 + m2 * n2
    budget = math.floor(m * n / ratio)
    if kp > budget:
        raise DopingError(
            f"ratio {ratio:g} leaves {budget} parameters for a {m}x{n} layer, but the Kronecker factors "
            f"A {m1}x{n1} and B {m2}x{n2} alone need {kp} (the largest ratio they allow is {m * n / kp:.1f})"
        )
    return budget - kp


@dataclass(frozen=True)
class Compression:
    dense_params: int
    params: int
    param_ratio: float
    dense_bits: int
    stored_bits: int
    bit_ratio: float

    def as_dict(self) -> dict:
        return asdict(self)


def index_bits(count: int) -> int:
    """Bits of an unsigned index addressing ``count`` distinct values (at least 1)."""
    return max(1, math.ceil(math.log2(max(count, 2))))


def account(m: int, n: int, factor_shapes, nnz: int, value_bits: int = VALUE_BITS) -> Compression:
    """Compression of one doped layer, as parameters and as stored bits (see module docstring)."""
    (m1, n1), (m2, n2) = factor_shapes
    params = m1 * n1 + m2 * n2 + nnz
    stored = (m1 * n1 + m2 * n2) * value_bits + sparse_bits(m, n, nnz, value_bits)
    dense_bits = m * n * value_bits
    return Compression(m * n, params, m * n / params, dense_bits, stored, dense_bits / stored)
