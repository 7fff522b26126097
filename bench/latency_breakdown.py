"""Where one vector's latency goes (issue 31), from the exact cycle model (== RTL): per layer and
design, the first vector's hand-overs (x in, first GEMM start, G1 and G2 done, lanes done, SEND
start, last y) and the interval, at batch B and at B = 1. Both overlaps inside a vector are built
(session 17; the cycle model is the RTL's): SEND streams behind G2's row bands, and at B = 1 in XB
order G1 starts on X's first row band, each band of tiles once its rows are in.

Then the flagship layer at B = 1 over lanes and stream widths (``b1_frontier``): what one vector's
latency costs in interval once no vector waits for a batch.

    python bench/latency_breakdown.py [--json docs/latency_breakdown.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from doping.config import PRESETS
from doping.estimate.cycles import schedule, vector_times
from doping.estimate.designs import fit_config
from doping.estimate.model import estimate
from doping.pack import read_pack
from doping.synth import flagship_layers

ROOT = Path(__file__).resolve().parent.parent


def cases():
    flag = flagship_layers()[0][1]
    ptb = read_pack(ROOT / "packs" / "ptb-h200-dkp-lstm25.dpack").layers[0]
    yield "flagship rule layer 2600x1300 @25x", flag, PRESETS["flagship"]
    yield "flagship rule layer 2600x1300 @25x", flag, replace(PRESETS["flagship"], batch=1)
    yield "PTB 2x200 gate layer (ptb-h200-dkp-lstm25)", ptb, PRESETS["default"]
    yield "PTB 2x200 gate layer (ptb-h200-dkp-lstm25)", ptb, replace(PRESETS["default"], lanes=64, stream_bytes=8)


def breakdown(layer, cfg) -> dict:
    cfg = fit_config(cfg, layer)
    s = schedule(layer, cfg)
    t = vector_times(layer, cfg, cfg.batch)[0]
    out = {"design": f"{cfg.rows}x{cfg.cols}, {cfg.lanes} lanes, W {cfg.stream_bytes}, B {cfg.batch}",
           "order": layer.order, "latency": s.cycles, "interval": s.interval,
           "latency_over_interval": round(s.cycles / s.interval, 2), "first_vector": t, "phases": s.phases}
    return out


def b1_frontier(layer, base) -> list[dict]:
    """The flagship layer at B = 1 (no vector waits for a batch) over lanes x stream widths on
    ``base``'s array: interval, one vector's latency and calibrated area — where the interval goes
    when the batch that shares each overlay read among B vectors is given up."""
    out = []
    for lanes in (32, 64):
        for w in (1, 2, 4, 8):
            cfg = replace(base, lanes=lanes, stream_bytes=w, batch=1)
            if cfg.stream_problems(layer):
                continue
            cfg = fit_config(cfg, layer)
            s, e = schedule(layer, cfg), estimate(layer, cfg)
            out.append({"design": f"{cfg.rows}x{cfg.cols}, {lanes} lanes, W {w}, B 1", "interval": s.interval,
                        "latency": s.cycles, "latency_over_interval": round(s.cycles / s.interval, 2),
                        "area_mm2": round(e.area_mm2, 2)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    rows = []
    for name, layer, cfg in cases():
        rows.append({"layer": name, **breakdown(layer, cfg)})
        r = rows[-1]
        print(f"{r['layer']}: {r['design']} {r['order']}: latency {r['latency']}, interval {r['interval']:g} "
              f"({r['latency_over_interval']}x); {r['first_vector']}")
    flag = fit_config(PRESETS["flagship"], flagship_layers()[0][1])
    frontier = b1_frontier(flagship_layers()[0][1], PRESETS["flagship"])
    print(f"flagship preset (B {flag.batch}): {estimate(flagship_layers()[0][1], flag).area_mm2:.2f} mm^2; at B = 1:")
    for r in frontier:
        print(f"  {r['design']}: interval {r['interval']:g}, latency {r['latency']} ({r['latency_over_interval']}x), "
              f"{r['area_mm2']} mm^2")
    if args.json:
        meta = {"command": "python bench/latency_breakdown.py --json " + args.json, "machine": platform.node(),
                "date": time.strftime("%Y-%m-%d")}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "flagship_b1": frontier}, indent=2) + "\n")


if __name__ == "__main__":
    main()
