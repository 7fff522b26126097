"""Fixed-point primitives of the accelerator (docs/numerics.md, sections 2-3).

All functions take and return NumPy integer arrays and compute in int64, which holds every
intermediate exactly: a 32-bit accumulator times a 15-bit multiplier is at most 47 bits, and the
rounding constant 2**(shift-1) with shift <= 47 cannot overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: Requantisation multiplier M is an unsigned 15-bit integer, 1 <= M <= 2**15 - 1.
MULT_BITS = 15
MULT_MAX = 2**MULT_BITS - 1
#: Requantisation right shift, 0 <= shift <= SHIFT_MAX.
SHIFT_MAX = 47
#: Longest dot product any int8 x int8 GEMM or overlay row may have: |sum| <= 2**17 * 2**14 = 2**31
#: can still overflow at exactly the limit, so the bound is strict (< 2**17 terms).
MAX_DOT_LENGTH = 2**17 - 1


@dataclass(frozen=True)
class Requant:
    """Scale an integer by ``multiplier * 2**-shift`` with round-half-up and saturation.

    ``multiplier``: unsigned 15-bit (1..32767); ``shift``: 0..47 bits.
    """

    multiplier: int
    shift: int

    def __post_init__(self):
        if not (isinstance(self.multiplier, int) and 1 <= self.multiplier <= MULT_MAX):
            raise ValueError(f"requant multiplier {self.multiplier!r} outside 1..{MULT_MAX}")
        if not (isinstance(self.shift, int) and 0 <= self.shift <= SHIFT_MAX):
            raise ValueError(f"requant shift {self.shift!r} outside 0..{SHIFT_MAX}")

    @property
    def real(self) -> float:
        """The real factor this requantisation implements exactly."""
        return self.multiplier / 2.0**self.shift

    @classmethod
    def from_real(cls, r: float) -> "Requant":
        """Nearest (multiplier, shift) to a positive real factor ``r``.

        The multiplier is normalised into [2**14, 2**15) when the shift range allows, which
        keeps the relative error of the factor below 2**-15.
        """
        if not (np.isfinite(r) and r > 0):
            raise ValueError(f"requant factor must be positive and finite, got {r!r}")
        shift = MULT_BITS - 1 - int(np.floor(np.log2(r)))
        shift = min(max(shift, 0), SHIFT_MAX)
        m = int(round(r * 2.0**shift))
        if m > MULT_MAX and shift > 0:
            shift -= 1
            m = int(round(r * 2.0**shift))
        if m > MULT_MAX:
            raise ValueError(f"requant factor {r!r} too large for a {MULT_BITS}-bit multiplier")
        return cls(max(m, 1), shift)


def saturate(v: np.ndarray, bits: int) -> np.ndarray:
    """Clamp a signed integer array to ``bits`` bits two's complement."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(v, lo, hi)


def shift_round(v: np.ndarray, shift: int) -> np.ndarray:
    """Arithmetic right shift with round-half-up: ``floor((v + 2**(shift-1)) / 2**shift)``.

    Ties go toward +infinity (2.5 -> 3, -2.5 -> -2), the cheapest rounding in hardware: one add
    of a constant before the shift.
    """
    v = np.asarray(v, dtype=np.int64)
    if shift == 0:
        return v
    return (v + (1 << (shift - 1))) >> shift


def requantise(acc: np.ndarray, rq: Requant, bits: int) -> np.ndarray:
    """``saturate(shift_round(acc * multiplier, shift), bits)``, computed in int64."""
    return saturate(shift_round(np.asarray(acc, dtype=np.int64) * rq.multiplier, rq.shift), bits)
