"""Design-space exploration for one layer (``doping dse``): array shape x gather lanes x stream width
x batch, each point priced by the exact estimator on its own fitted buffers.

The search has two stages:

1. **Square arrays** (rows = cols in ``SQUARE``) x ``LANES`` x ``STREAMS``, each at batch 1 and,
   where the Kronecker GEMMs or the gather lanes bind (the units a batch relieves), at each of
   ``BATCHES``: every point is estimated.
2. **Non-square arrays** (rows != cols): dimensions from ``POWERS`` and the layer's own factor
   dimensions (an array that matches a GEMM's operand wastes no PE on padding), at most as many
   PEs as the largest square array. These are many (tens of shapes x lanes x streams x batches), so
   each is first bounded: its interval from closed forms (``cycles.interval_lower_bound``) times
   its exact area (buffers fitted). Candidates are taken in order of that bound and the search
   stops once the bound reaches the best interval x area found so far, since no point left can
   then be the balanced one. The energy x delay optimum and the Pareto front are taken over the
   points estimated (all of stage 1, and stage 2's survivors).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

from doping.config import AccelConfig
from doping.estimate.cycles import interval_lower_bound
from doping.estimate.designs import fit_config
from doping.estimate.calibration import silicon_basis
from doping.estimate.model import area_mm2, estimate
from doping.estimate.results import DsePoint, DseResult
from doping.fileio import atomic_path

SQUARE = (1, 2, 4, 8, 16)
LANES = (1, 2, 4, 8, 16, 32, 64)
STREAMS = (1, 2, 4, 8)
BATCHES = (2, 4, 8)
POWERS = (1, 2, 4, 8, 16, 32, 64)


def non_square_shapes(layer, max_pes: int | None = None, limit: int = 64) -> list[tuple[int, int]]:
    """(rows, cols) with rows != cols from ``POWERS`` and the layer's factor dimensions (<= ``limit``,
    the largest array the generator supports), at most ``max_pes`` PEs (default: the largest square
    array searched)."""
    max_pes = max_pes or max(SQUARE) ** 2
    dims = set(POWERS) | {d for shape in layer.factor_shapes for d in shape if 1 <= d <= limit}
    return [(r, c) for r in sorted(dims) for c in sorted(dims) if r != c and r * c <= max_pes]


def _point(layer, cfg: AccelConfig) -> DsePoint:
    r = estimate(layer, cfg)
    busy = r.utilisation.interval
    return DsePoint(rows=cfg.rows, cols=cfg.cols, lanes=cfg.lanes, stream_bytes=cfg.stream_bytes, batch=cfg.batch,
                    cycles=r.cycles, latency_us=r.latency_us, interval_cycles=r.interval_cycles,
                    energy_nj=r.energy_pj / 1e3, area_mm2=r.area_mm2, power_mw=r.power_mw,
                    edp=r.energy_pj * r.latency_us, busy=dict(sorted(busy.items(), key=lambda kv: -kv[1])),
                    binding=max(busy, key=busy.get))


def _balance_key(p: DsePoint) -> tuple[float, float]:
    return p.interval_cycles * p.area_mm2, p.area_mm2


def _square_points(layer, base: AccelConfig) -> list[DsePoint]:
    pts = []
    for a, l, w in itertools.product(SQUARE, LANES, STREAMS):
        if l % w or (w > 1 and base.lstm_cell):
            continue
        cfg = replace(base, rows=a, cols=a, lanes=l, stream_bytes=w, batch=1)
        if cfg.stream_problems(layer):
            continue
        pts.append(_point(layer, fit_config(cfg, layer)))
        if pts[-1].binding in ("GEMM", "GATHER") and not base.lstm_cell:
            for b in BATCHES:
                if not replace(cfg, batch=b).stream_problems(layer):
                    pts.append(_point(layer, fit_config(replace(cfg, batch=b), layer)))
    return pts


def _non_square_points(layer, base: AccelConfig, best_key: float) -> tuple[list[DsePoint], dict]:
    """Stage 2: bound every non-square candidate, estimate them best bound first while the bound
    can still beat ``best_key``."""
    candidates = []
    batches = (1,) if base.lstm_cell else (1, *BATCHES)
    for (r, c), l, w, b in itertools.product(non_square_shapes(layer), LANES, STREAMS, batches):
        if l % w or (w > 1 and base.lstm_cell):
            continue
        cfg = replace(base, rows=r, cols=c, lanes=l, stream_bytes=w, batch=b)
        if cfg.stream_problems(layer):
            continue
        lb = interval_lower_bound(layer, cfg)
        if lb * area_mm2(cfg)["logic"] >= best_key:  # logic alone (no buffers yet) already loses
            candidates.append((lb * area_mm2(cfg)["logic"], None))
            continue
        cfg = fit_config(cfg, layer)
        candidates.append((lb * sum(area_mm2(cfg).values()), cfg))
    candidates.sort(key=lambda t: t[0])
    pts = []
    for bound, cfg in candidates:
        if bound >= best_key:
            break
        pts.append(_point(layer, cfg))
        best_key = min(best_key, _balance_key(pts[-1])[0])
    return pts, {"candidates": len(candidates), "estimated": len(pts), "pruned": len(candidates) - len(pts)}


def dse(layer, base: AccelConfig, out_dir: Path, latency_us: float | None = None,
        non_square: bool = True) -> DseResult:
    """The design points of ``layer`` (module docstring): the energy x delay optimum, the smallest
    area meeting ``latency_us``, the energy/latency Pareto front (plotted to ``out_dir/dse.png``),
    and the balanced point: the most vectors per second per mm^2 when streaming (min interval x
    area), with each unit's busy share of the interval, the binding one first."""
    t0 = time.perf_counter()
    pts = _square_points(layer, base)
    square_balanced = min(pts, key=_balance_key)
    search = {"square_points": len(pts)}
    if non_square:
        more, stats = _non_square_points(layer, base, _balance_key(square_balanced)[0])
        pts += more
        search["non_square"] = stats
    search["seconds"] = round(time.perf_counter() - t0, 2)
    best = min(pts, key=lambda p: p.edp)
    front = sorted([p for p in pts if not any(q.energy_nj <= p.energy_nj and q.latency_us <= p.latency_us
                                              and q != p for q in pts)], key=lambda p: p.latency_us)
    meeting = [p for p in pts if latency_us is None or p.latency_us <= latency_us]
    _plot(pts, front, best, out_dir)
    return DseResult(points=tuple(pts), best_edp=best, pareto=tuple(front),
                     smallest_area_meeting_latency=min(meeting, key=lambda p: p.area_mm2) if meeting else None,
                     latency_bound_us=latency_us, balanced=min(pts, key=_balance_key), square_balanced=square_balanced,
                     search=search, silicon_basis=silicon_basis(base.tech_nm))


def _plot(pts, front, best, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    from doping.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=90)
    sq = [p for p in pts if p.square]
    ns = [p for p in pts if not p.square]
    ax.scatter([p.latency_us for p in sq], [p.energy_nj for p in sq], s=10, c="grey", label="square arrays")
    if ns:
        ax.scatter([p.latency_us for p in ns], [p.energy_nj for p in ns], s=10, c="tab:orange", marker="s",
                   label="non-square arrays")
    ax.plot([p.latency_us for p in front], [p.energy_nj for p in front], "r-o", ms=4, label="Pareto front")
    ax.scatter([best.latency_us], [best.energy_nj], marker="*", s=120, c="b", label="min energy×delay")
    ax.set_xscale("log")
    ax.set_xlabel("latency per vector (µs)")
    ax.set_ylabel("energy per vector (nJ)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_dir / "dse.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
