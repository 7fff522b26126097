"""The design points the estimator explores and the buffer fitting every pricing path uses: a
config's capacities grown until a layer (or every layer of a pack) fits (``fit_config``,
``fit_layers``), and the array x lanes x stream-width grid ``balanced_config`` and the LSTM
design search choose among."""

from __future__ import annotations

import itertools
from dataclasses import replace

from doping.config import AccelConfig, bits_for

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
        if l % w:
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
