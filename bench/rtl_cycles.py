"""Simulated latencies of vectors streamed back to back (Verilator, cocotb) against the estimator's
exact model, the steady-state interval against the resource bound, and the array's and the lanes'
utilisation, for the flagship layer and the PTB pack.

Layers: 2600x1300 @25x (synthetic, seed 0) at the rule's factor shapes and at a Kronecker-heavy
share (--share, default 0.78: the most-Kronecker shape of bench/dkp_speed.py) and pruned (no
Kronecker part: the lanes bind), and every layer of the PTB pack. The bound is max(KP MACs /
(R*C), nnz / (L*B), n / W, m / W): the busiest of the array, the lanes and the
W-element-per-beat x and y streams (``--stream-bytes`` W overrides the config's; ``--batch`` B: B
vectors per pass of the first GEMM and of the lanes, and the vectors run rounded up to whole
batches, at least two).

  python bench/rtl_cycles.py [--config default] [--stream-bytes W] [--batch B] [--vectors 3]
                             [--share 0.78] [--pack packs/...] [--json F]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

from doping.config import load_config
from doping.estimate.baselines import fit_config
from doping.estimate.cycles import vector_times
from doping.estimate.model import estimate
from doping.pack import read_pack, write_pack
from doping.sim.runner import run
from doping.synth import flagship_layers

PTB_PACK = Path(__file__).resolve().parent.parent / "packs" / "ptb-h200-dkp-dropconnect25.dpack"


def measure(name, layer, base, vectors, tmp):
    cfg = fit_config(base, layer)
    if cfg.batch > 1:
        vectors = max(2, -(-vectors // cfg.batch)) * cfg.batch
    pack = write_pack(Path(tmp) / f"{name}.dpack", [layer])
    r = run([pack], cfg, vectors=vectors, seed=0)
    e = estimate(layer, cfg)
    model = [t["latency"] for t in vector_times(layer, cfg, vectors)]
    return {"layer": name, "shape": [layer.m, layer.n], "factors": layer.factor_shapes, "order": layer.order,
            "nnz": layer.nnz, "config": cfg.as_dict(), "mismatches": r.mismatches,
            "measured_latencies": r.latency_cycles, "model_latencies": model,
            "model_equals_rtl": r.latency_cycles == model, "busy_cycles": r.busy_cycles[0],
            "latency_cycles": e.latency_cycles, "interval_cycles": e.interval_cycles, "bound": e.bound,
            "interval_to_bound": e.interval_cycles / e.bound, "vectors": vectors,
            "utilisation": e.utilisation.to_json(), "area_mm2": e.area_mm2, "clock_mhz": e.clock_mhz,
            "wall_seconds": r.wall_seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--stream-bytes", type=int, help="elements per x/y beat (default: the config's)")
    ap.add_argument("--batch", type=int, help="vectors per pass of the first GEMM and the lanes (default: the config's)")
    ap.add_argument("--vectors", type=int, default=3)
    ap.add_argument("--share", type=float, default=0.78)
    ap.add_argument("--pack", default=str(PTB_PACK))
    ap.add_argument("--only", nargs="*", help="layer names to run (rule, share, pruned, or PTB layer names)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    base = load_config(args.config)
    if args.stream_bytes:
        base = replace(base, stream_bytes=args.stream_bytes)
    if args.batch:
        base = replace(base, batch=args.batch)
    layers = flagship_layers(args.share)
    layers += [(f"ptb:{l.name}", l) for l in read_pack(args.pack).layers]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layer in layers:
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            if base.stream_problems(layer):
                print(f"{name}: skipped, {'; '.join(base.stream_problems(layer))}", flush=True)
                continue
            rows.append(measure(name.replace(":", "_"), layer, base, args.vectors, tmp))
            print(json.dumps({k: rows[-1][k] for k in ("layer", "measured_latencies", "model_equals_rtl",
                                                         "interval_cycles", "bound", "utilisation", "area_mm2",
                                                         "mismatches")}), flush=True)
    out = {"date": str(date.today()), "machine": platform.node(), "config": args.config,
           "command": "python bench/rtl_cycles.py " + " ".join(f"--{k} {v}" for k, v in
                                                              (("config", args.config),
                                                               ("stream-bytes", base.stream_bytes),
                                                               ("batch", base.batch),
                                                               ("vectors", args.vectors), ("share", args.share))),
           "layers": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
