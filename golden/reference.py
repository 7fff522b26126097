"""Float reference of a quantised doped layer, and the golden model's documented error bound."""

from __future__ import annotations

import numpy as np

from doping.golden.layer import QuantLayer
from doping.golden.model import check_input


def float_forward(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """Real-valued ``(kron(A,B) + S) @ x`` in float64, shape (batch, m), in real units.

    Uses the dequantised factors and overlay at the effective scales of ``layer.scales()``, so it
    is the same layer as the integer model with every rounding removed. ``x`` is the int8 batch;
    it is dequantised with ``x_scale``.
    """
    xi = check_input(layer, x)
    sc = layer.scales()
    kp = 0.0
    if layer.has_kp:
        (m1, n1), (m2, n2) = layer.factor_shapes
        xr = xi.astype(np.float64).reshape(-1, n1, n2) * sc["x"]
        a = layer.a.astype(np.float64) * sc["a"]
        b = layer.b.astype(np.float64) * sc["b"]
        kp = np.matmul(np.matmul(a, xr), b.T).reshape(-1, layer.m)
    s = layer.dense_overlay().astype(np.float64) * sc["s"]
    return kp + xi.astype(np.float64) * sc["x"] @ s.T


def dequantise_output(layer: QuantLayer, y: np.ndarray) -> np.ndarray:
    """int8 output codes to real units (float64)."""
    return np.asarray(y, dtype=np.float64) * layer.scales()["y"]


def error_bound(layer: QuantLayer) -> np.ndarray:
    """Per-output-row bound on ``|dequantise_output(forward(x)) - float_forward(x)|``, real units.

    Holds whenever nothing saturates (docs/numerics.md, section 5): half an LSB of the
    intermediate carried through the second factor's row, half an LSB of the accumulator for the
    overlay alignment, and half an output LSB.
    """
    sc = layer.scales()
    (m1, _), (m2, _) = layer.factor_shapes
    if not layer.has_kp:  # no intermediate: the overlay alignment is exact (ov_rq = 1)
        return np.full(layer.m, 0.5 * sc["acc"] + 0.5 * sc["y"])
    if layer.order == "AX":
        carry = np.tile(np.abs(layer.b.astype(np.int64)).sum(axis=1), m1)  # row i = (a, b): B row b
    else:
        carry = np.repeat(np.abs(layer.a.astype(np.int64)).sum(axis=1), m2)  # A row a
    return 0.5 * sc["acc"] * (carry + 1) + 0.5 * sc["y"]
