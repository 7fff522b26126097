"""Post-training quantisation of a float doped layer into a QuantLayer (symmetric, per tensor).

Shared by the synthetic-pack generator and the export of trained models, so both produce packs
by the same rule: each tensor's scale is max|value| / 127 over the tensor (weights) or over a
calibration batch (input, intermediate, output); requantisations are the nearest
(multiplier, shift) to the ratio of scales (docs/numerics.md, section 4).
"""

from __future__ import annotations

import numpy as np

from doping.errors import DopingError
from doping.golden import QuantLayer, Requant, cheaper_order
from doping.golden.model import first_gemm, trace

_TINY = 1e-12


def _scale(values: np.ndarray) -> float:
    peak = float(np.max(np.abs(values))) if np.size(values) else 0.0
    return max(peak, _TINY) / 127.0


def quantise_tensor(values: np.ndarray, scale: float) -> np.ndarray:
    """Round half away from zero (numerics.md §8; ``np.round`` would round half to even), then
    saturate to int8."""
    v = np.asarray(values, dtype=np.float64) / scale
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127).astype(np.int8)


def quantise_layer(
    name: str,
    a: np.ndarray,
    b: np.ndarray,
    rowptr: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    x_calib: np.ndarray,
    order: str | None = None,
    meta: dict | None = None,
    x_scale: float | None = None,
) -> tuple[QuantLayer, np.ndarray]:
    """Quantise float factors ``a``, ``b`` and a float CSR overlay against a real-valued
    calibration batch ``x_calib`` of shape (batch, n). ``a = b = None``: a layer without a
    Kronecker part (W = S, of width ``x_calib.shape[1]`` and ``len(rowptr) - 1`` rows).
    ``x_scale``: the input's scale when it is fixed by what feeds the layer (a chained layer takes
    its input layer's output codes), instead of calibrating it.

    Returns the validated layer and the calibration batch quantised to int8.
    """
    vals = np.asarray(vals, dtype=np.float64)
    x_calib = np.atleast_2d(np.asarray(x_calib, dtype=np.float64))
    if a is None and b is None:
        return _quantise_sparse(name, rowptr, cols, vals, x_calib, meta, x_scale)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = a.shape[0] * b.shape[0], a.shape[1] * b.shape[1]
    if x_calib.shape[1] != n:
        raise DopingError(f"calibration batch has width {x_calib.shape[1]}, layer needs {n}")
    order = order or cheaper_order(a.shape[0], a.shape[1], b.shape[0], b.shape[1])
    sa, sb, sx = _scale(a), _scale(b), x_scale or _scale(x_calib)
    ss = _scale(vals)
    xq = quantise_tensor(x_calib, sx)
    unit = Requant(1, 0)
    layer = QuantLayer(
        name=name, shape=(m, n), a=quantise_tensor(a, sa), b=quantise_tensor(b, sb),
        rowptr=np.asarray(rowptr, dtype=np.int64), cols=np.asarray(cols, dtype=np.int64),
        vals=quantise_tensor(vals, ss), order=order, x_scale=sx, a_scale=sa, b_scale=sb,
        t_rq=unit, ov_rq=unit, y_rq=unit, meta=dict(meta or {}),
    )
    first = sa if order == "AX" else sb
    t_real = first_gemm(layer, xq).astype(np.float64) * (sx * first)
    layer.t_rq = Requant.from_real(sx * first / _scale(t_real))
    acc_scale = layer.scales()["acc"]
    layer.ov_rq = Requant.from_real(ss * sx / acc_scale)
    acc = trace(layer, xq).acc.astype(np.float64) * acc_scale
    layer.y_rq = Requant.from_real(acc_scale / _scale(acc))
    return layer.validate(), xq


def _quantise_sparse(name, rowptr, cols, vals, x_calib, meta, x_scale=None) -> tuple[QuantLayer, np.ndarray]:
    """A layer without a Kronecker part: the accumulator is in units of x_scale * s_scale (carried
    by ``a_scale``, see QuantLayer), so the overlay joins it unscaled."""
    sx, ss = x_scale or _scale(x_calib), _scale(vals)
    xq = quantise_tensor(x_calib, sx)
    unit = Requant(1, 0)
    empty = np.zeros((0, 0), dtype=np.int8)
    layer = QuantLayer(
        name=name, shape=(len(rowptr) - 1, x_calib.shape[1]), a=empty, b=empty,
        rowptr=np.asarray(rowptr, dtype=np.int64), cols=np.asarray(cols, dtype=np.int64),
        vals=quantise_tensor(vals, ss), order="AX", x_scale=sx, a_scale=ss, b_scale=1.0,
        t_rq=unit, ov_rq=unit, y_rq=unit, meta=dict(meta or {}),
    )
    acc_scale = layer.scales()["acc"]
    acc = trace(layer, xq).acc.astype(np.float64) * acc_scale
    layer.y_rq = Requant.from_real(acc_scale / _scale(acc))
    return layer.validate(), xq
