"""Every method priced one way: as a pack (``doping.synth.synth_method``) on the generated
accelerator, with its exact cycle model and the same SRAM, MAC and DRAM tables — DKP, KP,
pruning (no Kronecker part), dense (A = W, B = [1]) and LMF (two chained dense layers).

The layers of a pack run one after another on one accelerator that holds one layer at a time:
per vector, cycles, energy and the streaming interval add up over the layers (each layer streams
a batch of vectors with its weights loaded once; ``model.per_token`` prices the recurrent case,
where every token reloads every layer). SRAM is what the generator instantiates for the config,
power-of-two banks included, for every method alike.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from doping.config import AccelConfig, bits_for
from doping.estimate.model import combine, estimate
from doping.estimate.results import ModelEstimate
from doping.synth import METHODS, synth_method

__all__ = ["METHODS", "balanced_config", "fit_config", "fit_layers", "price"]

#: The design points ``balanced_config`` chooses among: (rows, cols) of the array (square ones,
#: and tall ones for matrices with a single output column, as dense and LMF layers are) x lanes x
#: elements per stream beat (those the layers' shapes allow, ``AccelConfig.stream_problems``).
ARRAYS = ((4, 4), (8, 8), (16, 16), (16, 1), (32, 1), (64, 1), (32, 2))
LANES = (1, 8, 32, 64)
STREAMS = (1, 4, 8)


def design_points(base: AccelConfig, layers):
    """Every (ARRAYS x LANES x STREAMS) variant of ``base`` that can run all of ``layers``
    (buffers not yet fitted)."""
    for (r, c), l, w in itertools.product(ARRAYS, LANES, STREAMS):
        if l % w or (w > 1 and base.lstm_cell):
            continue
        cfg = replace(base, rows=r, cols=c, lanes=l, stream_bytes=w)
        if not any(cfg.stream_problems(layer) for layer in layers):
            yield cfg


def fit_config(base: AccelConfig, layer) -> AccelConfig:
    """``base`` with buffer capacities grown (to powers of two) until ``layer`` fits: each capacity
    to the layer's own need (the intermediate for the layer's association order only), then only
    the capacity whose bank still overflows is doubled."""
    from doping.hw.loader import lane_entries

    (m1, n1), (m2, n2) = layer.factor_shapes
    p2 = lambda v: 1 << bits_for(v)  # noqa: E731
    need = dict(max_m=layer.m, max_n=layer.n, max_factor=max(m1 * n1, m2 * n2, 1),
                max_intermediate=max(m1 * n2 if layer.order == "AX" else n1 * m2, 1))
    grown = {k: max(getattr(base, k), p2(v)) for k, v in need.items()}
    # the overlay: each lane's bank holds its entries and an end word, in a power-of-two depth;
    # size the capacity to exactly that (not the total rounded up, which can double every bank)
    longest = max(len(e) for e in lane_entries(layer, base)) + 1
    grown["max_nnz"] = max(base.max_nnz, base.lanes * p2(longest) - base.lanes)
    cfg = replace(base, **grown)
    for _ in range(64):
        short = cfg.shortfalls(layer)
        if not short:
            return cfg
        grow = {field for *_, field in short}
        cfg = replace(cfg, **{f: getattr(cfg, f) * 2 for f in grow})
    cfg.check(layer)
    return cfg


def fit_layers(base: AccelConfig, layers) -> AccelConfig:
    """``base`` grown until every one of ``layers`` fits (one at a time)."""
    cfgs = [fit_config(base, l) for l in layers]
    keys = ("max_m", "max_n", "max_factor", "max_intermediate", "max_nnz")
    return replace(base, **{k: max(getattr(c, k) for c in cfgs) for k in keys})


def _run(layers, cfg: AccelConfig) -> ModelEstimate:
    return combine([estimate(l, cfg) for l in layers])


def balanced_config(base: AccelConfig, layers) -> AccelConfig:
    """The design point (``design_points``, buffers fitted) with the most vectors per second per
    mm^2 when streaming ``layers``: min streaming interval x area, then the smaller area."""
    best = None
    for point in design_points(base, layers):
        cfg = fit_layers(point, layers)
        est = _run(layers, cfg)
        key = (est.interval_cycles * est.area_mm2, est.area_mm2)
        if best is None or key < best[0]:
            best = (key, cfg)
    return best[1]


def price(m: int, n: int, ratio: float, method: str, base: AccelConfig, seed: int = 0,
          balanced: bool = False) -> ModelEstimate:
    """Cycles, SRAM, energy, area and power of one (m x n, ratio, method) point: the method's
    synthetic pack on ``base`` with its buffers fitted, or (``balanced``) on the balanced design
    point for it. Dense is ratio 1 whatever ``ratio`` says."""
    from doping.pack import totals

    layers = synth_method(method, (m, n), 1 if method == "dense" else ratio, seed=seed)
    cfg = balanced_config(base, layers) if balanced else fit_layers(base, layers)
    return replace(_run(layers, cfg), method=method, ratio=ratio, params=totals(layers)["params"])
