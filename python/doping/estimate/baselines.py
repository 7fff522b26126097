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

from dataclasses import replace

from doping.config import AccelConfig
from doping.estimate.designs import ARRAYS, LANES, STREAMS, design_points, fit_config, fit_layers  # noqa: F401
from doping.estimate.price import price_layers
from doping.estimate.results import ModelEstimate
from doping.synth import METHODS, synth_method

__all__ = ["ARRAYS", "LANES", "METHODS", "STREAMS", "balanced_config", "design_points", "fit_config", "fit_layers",
           "price"]

def _run(layers, cfg: AccelConfig) -> ModelEstimate:
    return price_layers(layers, cfg, tokens=False)


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
