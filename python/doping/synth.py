"""Synthetic layers: valid packs of any shape and compression ratio, without training, for DKP and
for every baseline method on the same hardware (``synth_method``).

Rule (docs/pack-format.md, "Synthetic packs"): factor shapes from
``compression.choose_factor_shapes`` unless given; A, B ~ N(0, 1); the overlay holds exactly the
nonzeros the ratio leaves, at uniformly random distinct positions, values ~ N(0, 1); the layer is
quantised against a calibration batch of 64 vectors x ~ N(0, 1), all from one seeded generator.
Baselines (budget = floor(m*n / ratio) parameters): ``kp`` the largest factors within the budget
and no overlay; ``prune`` budget nonzeros and no Kronecker part; ``dense`` W as factor A with a
1 x 1 factor B = [1] (XB order: the intermediate is x itself); ``lmf`` rank r = budget // (m+n)
as two chained dense layers, V (r x n) then U (m x r).
"""

from __future__ import annotations

import math
import re

import numpy as np

from doping.compression import (choose_factor_shapes, factor_shapes_for_share, largest_factor_shapes_within,
                                overlay_budget)
from doping.errors import DopingError
from doping.golden import QuantLayer
from doping.pack import MAX_DIM
from doping.quantize import quantise_layer

CALIBRATION_VECTORS = 64
#: Methods ``synth_method`` makes; each runs on the generated accelerator.
METHODS = ("dkp", "kp", "prune", "dense", "lmf")
# sampling distinct overlay positions takes 8*m*n bytes for a while: checked before it starts
MAX_SYNTH_ELEMENTS = 1 << 27


def parse_shape(text: str) -> tuple[int, int]:
    """'2600x1300' -> (2600, 1300)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise DopingError(f"shape {text!r} is not of the form MxN with positive M and N (e.g. 2600x1300)")
    return int(m.group(1)), int(m.group(2))


def random_csr(rng: np.random.Generator, m: int, n: int, nnz: int):
    """CSR pattern of ``nnz`` distinct uniformly random positions in an m x n matrix."""
    flat = np.sort(rng.choice(m * n, size=nnz, replace=False)) if nnz else np.zeros(0, dtype=np.int64)
    rows, cols = np.divmod(flat.astype(np.int64), n)
    rowptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=m), out=rowptr[1:])
    return rowptr, cols


def synth_layer(
    shape: tuple[int, int],
    ratio: float,
    seed: int = 0,
    factor_shapes=None,
    order: str | None = None,
    name: str = "synth",
) -> QuantLayer:
    """A random doped layer whose parameter count meets compression ``ratio``."""
    m, n = shape
    _check_size(m, n)
    if factor_shapes is None:
        factor_shapes = choose_factor_shapes(m, n)
    (m1, n1), (m2, n2) = factor_shapes
    if m1 * m2 != m or n1 * n2 != n:
        raise DopingError(f"factor shapes A {m1}x{n1}, B {m2}x{n2} do not multiply to the layer shape {m}x{n}")
    nnz = overlay_budget(m, n, ratio, factor_shapes)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m1, n1))
    b = rng.standard_normal((m2, n2))
    rowptr, cols = random_csr(rng, m, n, nnz)
    vals = rng.standard_normal(nnz)
    x = rng.standard_normal((CALIBRATION_VECTORS, n))
    meta = {"method": "dkp", "source": "synthetic", "seed": seed, "target_ratio": ratio}
    layer, _ = quantise_layer(name, a, b, rowptr, cols, vals, x, order=order, meta=meta)
    return layer


def _check_size(m: int, n: int) -> None:
    if max(m, n) > MAX_DIM or m * n > MAX_SYNTH_ELEMENTS:
        raise DopingError(f"a synthetic {m}x{n} layer is larger than this tool makes (each side <= {MAX_DIM}, "
                          f"m*n <= {MAX_SYNTH_ELEMENTS}); nothing was allocated")


def dense_layer(name: str, w: np.ndarray, x: np.ndarray, meta: dict, source: QuantLayer | None = None) -> QuantLayer:
    """A dense matrix ``w`` as a layer the accelerator runs: A = w, B = [1], XB order, calibrated
    on the real inputs ``x``; chained after ``source`` (its output codes are the input, at its
    output scale) when given."""
    x_scale = source.scales()["y"] if source is not None else None
    layer, _ = quantise_layer(name, w, np.ones((1, 1)), np.zeros(w.shape[0] + 1, np.int64), np.zeros(0, np.int64),
                              np.zeros(0), x, order="XB", meta=meta, x_scale=x_scale)
    layer.input = None if source is None else source.name
    return layer.validate()


def synth_method(method: str, shape: tuple[int, int], ratio: float, seed: int = 0, name: str = "synth",
                 factor_shapes=None, order: str | None = None) -> list[QuantLayer]:
    """The layers of one random ``method`` model of ``shape`` at parameter ``ratio`` (see the
    module docstring): one layer, or LMF's chain of two."""
    if method not in METHODS:
        raise DopingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if (factor_shapes or order) and method != "dkp":
        raise DopingError("--factors and --order apply to the dkp method only")
    m, n = shape
    _check_size(m, n)
    if method == "dkp":
        return [synth_layer(shape, ratio, seed, factor_shapes, order, name)]
    if method == "dense" and ratio != 1:
        raise DopingError(f"a dense layer has ratio 1, got --ratio {ratio:g}")
    budget = math.floor(m * n / ratio)
    meta = {"method": method, "source": "synthetic", "seed": seed, "target_ratio": ratio}
    if method == "kp":
        shapes = largest_factor_shapes_within(m, n, budget)
        kp = shapes[0][0] * shapes[0][1] + shapes[1][0] * shapes[1][1]
        layer = synth_layer(shape, m * n / kp, seed, shapes, None, name)
        layer.meta.update(meta)
        return [layer]
    rng = np.random.default_rng(seed)
    if method == "prune":
        if budget < 1:
            raise DopingError(f"ratio {ratio:g} leaves no nonzero in a {m}x{n} layer")
        rowptr, cols = random_csr(rng, m, n, budget)
        vals = rng.standard_normal(budget)
        x = rng.standard_normal((CALIBRATION_VECTORS, n))
        layer, _ = quantise_layer(name, None, None, rowptr, cols, vals, x, meta=meta)
        return [layer]
    if method == "dense":
        w = rng.standard_normal((m, n)) / np.sqrt(n)
        return [dense_layer(name, w, rng.standard_normal((CALIBRATION_VECTORS, n)), meta)]
    rank = budget // (m + n)
    if rank < 1:
        raise DopingError(f"ratio {ratio:g} leaves no rank for a {m}x{n} low-rank factorisation")
    v = rng.standard_normal((rank, n)) / np.sqrt(n)
    u = rng.standard_normal((m, rank)) / np.sqrt(rank)
    x = rng.standard_normal((CALIBRATION_VECTORS, n))
    first = dense_layer(f"{name}.v", v, x, dict(meta, rank=rank))
    return [first, dense_layer(f"{name}.u", u, x @ v.T, dict(meta, rank=rank), source=first)]


#: The flagship layer: the paper's PTB-medium LSTM gate matrix (4*650 x 2*650) at 25x.
FLAGSHIP_SHAPE, FLAGSHIP_RATIO = (2600, 1300), 25


def flagship_layers(share: float = 0.78) -> list[tuple[str, QuantLayer]]:
    """The flagship layer (seed 0) as the benches price and simulate it: DKP at the rule's factor
    shapes (``rule``), DKP at Kronecker ``share`` of the budget (``share<share>``; 0.78 is the
    most-Kronecker shape of bench/dkp_speed.py) and pruned (``pruned``: no Kronecker part)."""
    shape, ratio = FLAGSHIP_SHAPE, FLAGSHIP_RATIO
    return [("rule", synth_layer(shape, ratio, seed=0)),
            (f"share{share:g}", synth_layer(shape, ratio, seed=0,
                                            factor_shapes=factor_shapes_for_share(*shape, ratio, share))),
            ("pruned", synth_method("prune", shape, ratio, seed=0)[0])]


def synth_lstm(input_size: int, hidden: int, layers: int, ratio: float, seed: int = 0):
    """A random doped LSTM stack: per layer a DKP gate layer ``lstm.l<k>.gates`` (4H x (I+H)) at
    ``ratio`` (``synth_layer``, seed + k) and its cell (golden/lstm.py). Ranges are calibrated the
    way export calibrates a trained model (``doping.int_lstm``): the pre-activation scale from the
    largest |pre-activation| over CALIBRATION_VECTORS random [x; h] (clipped at PRE_CLIP), the cell
    scale at CELL_CLIP; bias ~ N(0, 1). Returns (gate layers, LSTM layers)."""
    from doping.golden.lstm import (CELL_CLIP, PRE_CLIP, LSTMLayerQuant, gate_accumulator, quantise_bias, sigmoid_lut,
                                    tanh_lut)
    from doping.golden import Requant

    for what, v, hi in (("input size", input_size, MAX_DIM), ("hidden size", hidden, MAX_DIM // 4),
                        ("layers", layers, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise DopingError(f"synthetic LSTM: {what} must be an integer in 1..{hi}, got {v!r}")
    gates = [synth_layer((4 * hidden, (input_size if k == 0 else hidden) + hidden), ratio, seed + k,
                         name=f"lstm.l{k}.gates") for k in range(layers)]
    for k, g in enumerate(gates):
        g.meta.update({"lstm_layer": k, "gate_order": "i,f,g,o", "input": "[x; h]", "hidden": hidden})
    rng = np.random.default_rng(seed)
    cells = []
    for k, g in enumerate(gates):
        h = rng.uniform(-1, 1, (CALIBRATION_VECTORS, hidden))
        x = rng.standard_normal((CALIBRATION_VECTORS, g.n - hidden)) if k == 0 else np.tanh(rng.standard_normal(
            (CALIBRATION_VECTORS, g.n - hidden)))
        v = np.clip(np.round(np.concatenate([x, h], axis=1) / g.x_scale), -128, 127).astype(np.int8)
        acc_scale = g.scales()["acc"]
        bias = rng.standard_normal(4 * hidden)
        pre = gate_accumulator([g], v) * acc_scale + bias
        s_p, s_c = min(float(np.abs(pre).max()), PRE_CLIP) / 127, CELL_CLIP / 127
        s_next = gates[k + 1].x_scale if k + 1 < layers else g.x_scale
        cells.append(LSTMLayerQuant(
            gates=[g], hidden=hidden, bias=quantise_bias(bias, acc_scale),
            pre_rq=Requant.from_real(acc_scale / s_p), cell_rq=Requant.from_real(2.0 ** -15 / s_c),
            h_rq=Requant.from_real(2.0 ** -30 / g.x_scale), out_rq=Requant.from_real(2.0 ** -30 / s_next),
            sigmoid=sigmoid_lut(s_p), tanh=tanh_lut(s_p), tanh_c=tanh_lut(s_c)).validate())
    return gates, cells


def random_inputs(layer: QuantLayer, batch: int, seed: int = 0) -> np.ndarray:
    """Int8 input vectors drawn like the calibration data: round(N(0,1) / x_scale), saturated."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, layer.n)) / layer.x_scale
    return np.clip(np.round(x), -128, 127).astype(np.int8)
