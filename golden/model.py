"""The golden model: bit-exact integer forward pass of a doped layer (docs/numerics.md).

Inputs are batches of int8 vectors, shape ``(batch, n)``; every function is vectorised over the
batch, the factors and the overlay nonzeros (no Python loop over elements).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doping.errors import DopingError
from doping.golden.fixedpoint import requantise, saturate, shift_round
from doping.golden.layer import QuantLayer


def check_input(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """Validate an input batch: int8 dtype (or integers within int8), shape ``(batch, n)``."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != layer.n:
        raise DopingError(f"input batch has shape {x.shape}, expected (batch, {layer.n}) for layer {layer.name!r}")
    if x.dtype != np.int8:
        raise DopingError(f"input batch has dtype {x.dtype}, expected int8")
    return x.astype(np.int64)


def first_gemm(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """int32 accumulators of the first Kronecker GEMM, int64 array.

    "AX": ``T = A @ X`` of shape (batch, m1, n2); "XB": ``U = X @ B^T`` of shape (batch, n1, m2),
    where ``X = x.reshape(batch, n1, n2)`` row-major.
    """
    x = check_input(layer, x)
    if not layer.has_kp:  # no Kronecker part: an empty intermediate
        return np.zeros((x.shape[0], 0, 0), dtype=np.int64)
    (m1, n1), (m2, n2) = layer.factor_shapes
    xm = x.reshape(-1, n1, n2)
    if layer.order == "AX":
        return np.matmul(layer.a.astype(np.int64), xm)
    return np.matmul(xm, layer.b.astype(np.int64).T)


def second_gemm(layer: QuantLayer, t: np.ndarray) -> np.ndarray:
    """int32 accumulators of the second GEMM on the (requantised) intermediate, shape (batch, m)."""
    if not layer.has_kp:
        return np.zeros((t.shape[0], layer.m), dtype=np.int64)
    if layer.order == "AX":
        y = np.matmul(t, layer.b.astype(np.int64).T)
    else:
        y = np.matmul(layer.a.astype(np.int64), t)
    return y.reshape(t.shape[0], layer.m)


def kron_path(layer: QuantLayer, x: np.ndarray, requantise_intermediate: bool = True) -> np.ndarray:
    """``kron(A, B) @ x`` through the two GEMMs, as int64 accumulators of shape (batch, m).

    With ``requantise_intermediate=False`` the intermediate keeps full precision, so the result
    equals ``np.kron(A, B) @ x`` exactly (a test oracle, not a hardware mode).
    """
    t = first_gemm(layer, x)
    if requantise_intermediate:
        t = requantise(t, layer.t_rq, 8)
    return second_gemm(layer, t)


def overlay_path(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """``S @ x`` as int64 accumulators of shape (batch, m), from the CSR overlay.

    Products of all nonzeros are summed per row by differencing a prefix sum at the row
    pointers; exact in int64 and empty rows give 0.
    """
    x = check_input(layer, x)
    prods = x[:, layer.cols] * layer.vals.astype(np.int64)[None, :]
    csum = np.zeros((x.shape[0], prods.shape[1] + 1), dtype=np.int64)
    np.cumsum(prods, axis=1, out=csum[:, 1:])
    return csum[:, layer.rowptr[1:]] - csum[:, layer.rowptr[:-1]]


@dataclass
class Trace:
    """Every integer quantity of one forward pass (batch-leading int64 arrays, output int8)."""

    t_acc: np.ndarray  # first GEMM accumulators
    t_q: np.ndarray  # intermediate after requantisation to int8
    kp_acc: np.ndarray  # second GEMM accumulators, (batch, m)
    ov_acc: np.ndarray  # overlay accumulators, (batch, m)
    ov_aligned: np.ndarray  # overlay accumulators in the Kronecker accumulator's scale, int32
    acc: np.ndarray  # joined int32 accumulator
    y: np.ndarray  # int8 output, (batch, m)
    clipped: dict  # values that saturated at each point: "t", "ov", "acc", "y"

    def saturations(self) -> dict[str, int]:
        """How many values clipped at the int8 saturation points (intermediate, output)."""
        return {"t": self.clipped["t"], "y": self.clipped["y"]}


def trace(layer: QuantLayer, x: np.ndarray) -> Trace:
    """Run the layer and keep every intermediate (for block-level hardware tests)."""
    t_acc = first_gemm(layer, x)
    t_q = requantise(t_acc, layer.t_rq, 8)
    kp_acc = second_gemm(layer, t_q)
    ov_acc = overlay_path(layer, x)
    ov_aligned = requantise(ov_acc, layer.ov_rq, 32)
    acc = saturate(kp_acc + ov_aligned, 32)
    y = requantise(acc, layer.y_rq, 8).astype(np.int8)
    clipped = {
        "t": _clipped(shift_round(t_acc * layer.t_rq.multiplier, layer.t_rq.shift), t_q),
        "ov": _clipped(shift_round(ov_acc * layer.ov_rq.multiplier, layer.ov_rq.shift), ov_aligned),
        "acc": _clipped(kp_acc + ov_aligned, acc),
        "y": _clipped(shift_round(acc * layer.y_rq.multiplier, layer.y_rq.shift), y),
    }
    return Trace(t_acc, t_q, kp_acc, ov_acc, ov_aligned, acc, y, clipped)


def _clipped(before: np.ndarray, after: np.ndarray) -> int:
    return int(np.count_nonzero(before != after))


def forward(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """The accelerator's result: int8 output batch (batch, m) for an int8 input batch (batch, n)."""
    return trace(layer, x).y


def forward_chain(layers: list[QuantLayer], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of every layer of a pack, in order: a layer with ``input`` set takes that earlier
    layer's int8 output, any other takes ``inputs[its name]``."""
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.input is None:
            x = inputs[layer.name]
        elif layer.input in out:
            x = out[layer.input]
        else:
            raise DopingError(f"layer {layer.name!r} takes the output of {layer.input!r}, which does not come before it")
        out[layer.name] = forward(layer, x)
    return out
