"""Synthetic doped layers: valid packs of any shape and compression ratio, without training.

Rule (docs/pack-format.md, "Synthetic packs"): factor shapes from
``compression.choose_factor_shapes`` unless given; A, B ~ N(0, 1); the overlay holds exactly the
nonzeros the ratio leaves, at uniformly random distinct positions, values ~ N(0, 1); the layer is
quantised against a calibration batch of 64 vectors x ~ N(0, 1), all from one seeded generator.
"""

from __future__ import annotations

import re

import numpy as np

from doping.compression import choose_factor_shapes, overlay_budget
from doping.errors import DopingError
from doping.golden import QuantLayer
from doping.pack import MAX_DIM
from doping.quantize import quantise_layer

CALIBRATION_VECTORS = 64
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
    if max(m, n) > MAX_DIM or m * n > MAX_SYNTH_ELEMENTS:
        raise DopingError(f"a synthetic {m}x{n} layer is larger than this tool makes (each side <= {MAX_DIM}, "
                          f"m*n <= {MAX_SYNTH_ELEMENTS}); nothing was allocated")
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


def random_inputs(layer: QuantLayer, batch: int, seed: int = 0) -> np.ndarray:
    """Int8 input vectors drawn like the calibration data: round(N(0,1) / x_scale), saturated."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, layer.n)) / layer.x_scale
    return np.clip(np.round(x), -128, 127).astype(np.int8)
