"""The design-space search (``doping dse``): non-square arrays, and the bound that prunes them never
prunes the best point."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from doping.config import PRESETS
from doping.estimate import dse as dse_mod
from doping.estimate.cycles import interval_lower_bound, schedule
from doping.estimate.designs import fit_config
from doping.estimate.model import estimate
from doping.synth import synth_layer, synth_method


@pytest.mark.parametrize("seed", range(3))
def test_interval_lower_bound_holds(seed):
    """The closed-form bound never exceeds the exact interval, on random shapes, arrays (square or
    not), lanes, stream widths and batches."""
    rng = np.random.default_rng(seed)
    layers = [synth_layer((80, 60), 6, seed=seed), synth_method("prune", (64, 40), 8, seed=seed)[0],
              synth_layer((100, 25), 5, seed=seed, factor_shapes=((20, 5), (5, 5)))]
    checked = 0
    for layer in layers:
        for _ in range(12):
            r, c = (int(v) for v in rng.choice([1, 2, 3, 4, 5, 8, 10, 16], size=2))
            l, w, b = int(rng.choice([1, 2, 4, 8])), int(rng.choice([1, 2, 4])), int(rng.choice([1, 2, 4]))
            cfg = replace(PRESETS["default"], rows=r, cols=c, lanes=max(l, w) // w * w, stream_bytes=w, batch=b)
            if cfg.stream_problems(layer):
                continue
            cfg = fit_config(cfg, layer)
            assert interval_lower_bound(layer, cfg) <= schedule(layer, cfg).interval, cfg
            checked += 1
    assert checked >= 15


def test_pruned_search_finds_the_exhaustive_optimum(tmp_path, monkeypatch):
    """On a reduced grid, the non-square stage with its bound returns the same balanced point as
    estimating every candidate, while estimating only a few of them."""
    for name, value in (("SQUARE", (2, 4, 8)), ("LANES", (2, 8)), ("STREAMS", (1, 4)), ("BATCHES", (2,)),
                        ("POWERS", (1, 2, 4, 8))):
        monkeypatch.setattr(dse_mod, name, value)
    layer = synth_layer((100, 40), 5, seed=3, factor_shapes=((20, 8), (5, 5)))
    base = PRESETS["default"]
    got = dse_mod.dse(layer, base, tmp_path)
    stats = got.search["non_square"]
    assert stats["estimated"] + stats["pruned"] == stats["candidates"] > 10 * stats["estimated"]
    assert (tmp_path / "dse.png").is_file()

    def key(cfg):
        e = estimate(layer, cfg)
        return e.interval_cycles * e.area_mm2, e.area_mm2

    every = [fit_config(replace(base, rows=r, cols=c, lanes=l, stream_bytes=w, batch=b), layer)
             for (r, c), l, w, b in itertools.product(dse_mod.non_square_shapes(layer, max_pes=64),
                                                       dse_mod.LANES, dse_mod.STREAMS, (1, 2))
             if l % w == 0 and not replace(base, rows=r, cols=c, lanes=l, stream_bytes=w,
                                           batch=b).stream_problems(layer)]
    every += [fit_config(replace(base, **p.design), layer) for p in got.points if p.square]
    best = min(every, key=key)
    b, q = got.balanced, got.square_balanced
    assert key(best)[0] == pytest.approx(b.interval_cycles * b.area_mm2)
    assert b.interval_cycles * b.area_mm2 <= q.interval_cycles * q.area_mm2


def test_non_square_shapes_include_the_factor_dimensions():
    layer = synth_layer((100, 40), 5, seed=3, factor_shapes=((20, 8), (5, 5)))
    shapes = dse_mod.non_square_shapes(layer)
    assert (5, 20) in shapes and (20, 5) in shapes and (16, 16) not in shapes
    assert all(r * c <= 256 and r != c and max(r, c) <= 64 for r, c in shapes)
