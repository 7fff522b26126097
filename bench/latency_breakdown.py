"""Where one vector's latency goes (issue 31), from the exact cycle model (== RTL): per layer and
design, the first vector's hand-overs (x in, first GEMM start, G1 and G2 done, lanes done, SEND
start, last y) and the interval, at batch B and at B = 1. SEND streams behind G2's row bands (built,
session 17: the model is the RTL's); one overlap not built, as an estimate from the same phase
lengths, not cycle-exact: G1 starting once its first row band of X has arrived (XB: R rows of X,
R * n2 elements; AX needs all of X), SEND behind G2 as built.

    python bench/latency_breakdown.py [--json docs/latency_breakdown.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from doping.arch import G1_SETTLE, send_latency
from doping.config import PRESETS, ceil_div
from doping.estimate.cycles import beats, gemms, schedule, vector_times
from doping.estimate.designs import fit_config
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
    if cfg.batch == 1 and layer.has_kp:
        g1, g2 = gemms(layer, cfg)
        n, m = beats(layer.n, cfg), beats(layer.m, cfg)
        (m1, n1), (m2, n2) = layer.factor_shapes
        # G1 on its first row band: XB reads X by rows (n2 elements each), R rows a band
        early_g1 = ceil_div(min(cfg.rows, n1) * n2, cfg.stream_bytes) if layer.order == "XB" else n
        g1_end = max(early_g1 + 1 + g1.cycles(cfg), n + 1) + G1_SETTLE  # never before the last x is in
        g2_cyc = g2.cycles(cfg)
        g2_end = g1_end + 1 + g2_cyc
        # G2's first row band (R rows of K, all m2 columns: ceil(m2 / C) tiles) drained
        first_band = ceil_div(g2.cols, cfg.cols) * g2.spacing(cfg) + cfg.rows + cfg.cols - 1 + g2.drain
        lanes = t["lanes_seen"]
        send_from = max(g1_end + 1 + first_band, lanes)
        overlap_send = max(send_from + m, g2_end + ceil_div(min(cfg.rows, m1) * m2, cfg.stream_bytes)) \
            + send_latency(cfg)
        out["bounds_not_built"] = {"g1_on_first_band": overlap_send}
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
              f"({r['latency_over_interval']}x); {r['first_vector']}; not built: {r.get('bounds_not_built')}")
    if args.json:
        meta = {"command": "python bench/latency_breakdown.py --json " + args.json, "machine": platform.node(),
                "date": time.strftime("%Y-%m-%d")}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
