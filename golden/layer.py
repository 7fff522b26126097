"""The quantised doped layer: ``W = kron(A, B) + S`` in the integer form the accelerator holds.

This is the in-memory object that the model pack serialises and that the golden model, the RTL
and the estimator consume. ``validate()`` checks every invariant those consumers rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from doping.errors import PackError
from doping.golden.fixedpoint import INT8_MAX, INT8_MIN, MAX_DOT_LENGTH, Requant

#: Association orders of the two Kronecker GEMMs (docs/numerics.md, section 3).
#: "AX": T = A @ X (m1 x n2), then Y = T @ B^T.   "XB": U = X @ B^T (n1 x m2), then Y = A @ U.
ORDERS = ("AX", "XB")


def kp_macs(m1: int, n1: int, m2: int, n2: int, order: str) -> int:
    """Multiply-accumulates of one vector through both Kronecker GEMMs."""
    if order == "AX":
        return m1 * n1 * n2 + m1 * n2 * m2
    return n1 * n2 * m2 + m1 * n1 * m2


def cheaper_order(m1: int, n1: int, m2: int, n2: int) -> str:
    """The association order with fewer MACs per vector; "AX" on a tie."""
    return "AX" if kp_macs(m1, n1, m2, n2, "AX") <= kp_macs(m1, n1, m2, n2, "XB") else "XB"


@dataclass(eq=False)
class QuantLayer:
    """One doped layer in fixed point.

    Shapes: W is ``m x n`` with ``m = m1*m2``, ``n = n1*n2``; ``a`` is int8 ``m1 x n1``, ``b`` int8
    ``m2 x n2``. The overlay S is CSR by output row: ``rowptr`` (m+1, int64), ``cols`` (nnz,
    int64, strictly increasing within a row), ``vals`` (nnz, int8).

    A layer without a Kronecker part (a pruned matrix: W = S) has 0 x 0 factors (``has_kp`` is
    False); its ``a_scale`` then carries the overlay's scale and ``b_scale`` is 1, so that the
    accumulator's scale is x_scale * s_scale with ``t_rq`` and ``ov_rq`` the identity.
    ``input`` names the earlier layer of the pack whose int8 output is this layer's input (a
    chain, e.g. LMF's y = U (V x)); None: the model's input.

    Scales (real units per LSB): ``x_scale`` of the int8 input, ``a_scale`` and ``b_scale`` of the
    factors. Everything else follows from the three requantisations: ``t_rq`` (intermediate to
    int8), ``ov_rq`` (overlay accumulator into the Kronecker accumulator's scale), ``y_rq``
    (accumulator to int8 output). See ``scales()``.
    """

    name: str
    shape: tuple[int, int]
    a: np.ndarray
    b: np.ndarray
    rowptr: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    order: str
    x_scale: float
    a_scale: float
    b_scale: float
    t_rq: Requant
    ov_rq: Requant
    y_rq: Requant
    meta: dict = field(default_factory=dict)
    input: str | None = None

    @property
    def has_kp(self) -> bool:
        """Whether W has a Kronecker part (False: a pure sparse layer, W = S)."""
        return self.a.size > 0

    @property
    def m(self) -> int:
        return self.shape[0]

    @property
    def n(self) -> int:
        return self.shape[1]

    @property
    def factor_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return tuple(self.a.shape), tuple(self.b.shape)

    @property
    def nnz(self) -> int:
        return int(self.vals.shape[0])

    def row_nnz(self) -> np.ndarray:
        return np.diff(self.rowptr)

    def scales(self) -> dict[str, float]:
        """Effective real scale (units per LSB) of every integer quantity in the datapath.

        ``t``: the requantised intermediate (T in "AX", U in "XB"); ``acc``: the joined int32
        accumulator; ``s``: the overlay values, as the hardware implements them; ``y``: output.
        """
        first = self.a_scale if self.order == "AX" else self.b_scale
        second = self.b_scale if self.order == "AX" else self.a_scale
        t = self.x_scale * first / self.t_rq.real
        acc = t * second
        return {
            "x": self.x_scale,
            "a": self.a_scale,
            "b": self.b_scale,
            "t": t,
            "acc": acc,
            "s": acc * self.ov_rq.real / self.x_scale,
            "y": acc / self.y_rq.real,
        }

    def dense_overlay(self) -> np.ndarray:
        """S as a dense int64 ``m x n`` matrix (tests and float reference only)."""
        s = np.zeros(self.shape, dtype=np.int64)
        rows = np.repeat(np.arange(self.m), self.row_nnz())
        s[rows, self.cols] = self.vals
        return s

    def validate(self) -> "QuantLayer":
        """Raise PackError naming the first broken invariant; return self when all hold."""
        where = f"layer {self.name!r}"
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise PackError(f"{where}: shape {self.shape} is not a positive 2-D shape")
        m, n = self.shape
        for label, arr in (("A", self.a), ("B", self.b)):
            if arr.ndim != 2:
                raise PackError(f"{where}: factor {label} has shape {arr.shape}, expected 2-D")
        (m1, n1), (m2, n2) = self.factor_shapes
        no_kp = self.a.shape == (0, 0) and self.b.shape == (0, 0)
        if not no_kp and min(m1, n1, m2, n2) < 1:
            raise PackError(f"{where}: factors A {m1}x{n1} and B {m2}x{n2} must both be non-empty, or both 0x0 "
                            "(no Kronecker part)")
        if not no_kp and (m1 * m2 != m or n1 * n2 != n):
            raise PackError(
                f"{where}: factor shapes A {m1}x{n1} and B {m2}x{n2} give a {m1 * m2}x{n1 * n2} "
                f"Kronecker product, but the layer is {m}x{n}"
            )
        if self.order not in ORDERS:
            raise PackError(f"{where}: order {self.order!r} is not one of {ORDERS}")
        for label, arr in (("A", self.a), ("B", self.b), ("overlay values", self.vals)):
            _check_int8(where, label, arr)
        for label, arr in (("overlay row pointers", self.rowptr), ("overlay columns", self.cols)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise PackError(f"{where}: {label} have dtype {arr.dtype}, expected an integer dtype")
        rp, cols, vals = self.rowptr, self.cols, self.vals
        if rp.ndim != 1 or rp.shape[0] != m + 1:
            raise PackError(f"{where}: overlay row pointers have shape {rp.shape}, expected ({m + 1},)")
        if cols.ndim != 1 or vals.ndim != 1 or cols.shape != vals.shape:
            raise PackError(
                f"{where}: overlay columns {cols.shape} and values {vals.shape} must be 1-D of equal length"
            )
        if rp[0] != 0:
            raise PackError(f"{where}: overlay row pointers must start at 0, got {int(rp[0])}")
        bad = np.flatnonzero(np.diff(rp) < 0)
        if bad.size:
            i = int(bad[0])
            raise PackError(
                f"{where}: overlay row pointers are not monotone: rowptr[{i}]={int(rp[i])} > rowptr[{i + 1}]={int(rp[i + 1])}"
            )
        if rp[-1] != vals.shape[0]:
            raise PackError(
                f"{where}: overlay row pointers end at {int(rp[-1])} but there are {vals.shape[0]} nonzeros"
            )
        if cols.size:
            bad = np.flatnonzero((cols < 0) | (cols >= n))
            if bad.size:
                raise PackError(
                    f"{where}: overlay column index {int(cols[bad[0]])} (entry {int(bad[0])}) is out of range 0..{n - 1}"
                )
            same_row = np.ones(cols.size - 1, dtype=bool)
            starts = rp[1:-1]
            starts = starts[(starts > 0) & (starts < cols.size)]
            same_row[starts - 1] = False
            bad = np.flatnonzero(same_row & (np.diff(cols) <= 0))
            if bad.size:
                i = int(bad[0])
                row = int(np.searchsorted(rp, i, side="right") - 1)
                kind = "duplicate" if cols[i] == cols[i + 1] else "unsorted"
                raise PackError(
                    f"{where}: overlay row {row} has {kind} column indices ({int(cols[i])} then {int(cols[i + 1])}); "
                    "columns must be strictly increasing within a row"
                )
        longest = max(n1, n2, int(np.diff(rp).max(initial=0)))
        if longest > MAX_DOT_LENGTH:
            raise PackError(f"{where}: a dot product of {longest} terms could overflow the int32 accumulator")
        for label, val in (("x_scale", self.x_scale), ("a_scale", self.a_scale), ("b_scale", self.b_scale)):
            if not (isinstance(val, float) and np.isfinite(val) and val > 0):
                raise PackError(f"{where}: {label} must be a positive finite number, got {val!r}")
        for label, rq in (("t_rq", self.t_rq), ("ov_rq", self.ov_rq), ("y_rq", self.y_rq)):
            if not isinstance(rq, Requant):
                raise PackError(f"{where}: {label} is not a Requant")
        return self


def _check_int8(where: str, label: str, arr: np.ndarray) -> None:
    if not np.issubdtype(arr.dtype, np.integer):
        raise PackError(f"{where}: {label} have dtype {arr.dtype}, expected int8")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < INT8_MIN or hi > INT8_MAX:
            bad = lo if lo < INT8_MIN else hi
            raise PackError(f"{where}: {label} contain the value {bad}, outside int8 [{INT8_MIN}, {INT8_MAX}]")
