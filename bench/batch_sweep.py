"""Batch mode across B = 1, 2, 4, 8 from the exact cycle model (tested equal to the RTL): per
vector the steady-state interval against the bound, the first vector's latency, the array's
utilisation in the Kronecker phases and of the lanes, energy and area, for 2600x1300 @25x at the
rule shapes, at a Kronecker-heavy share and pruned (the lanes bind), and the PTB pack's layer.

  python bench/batch_sweep.py [--config default] [--stream-bytes 4] [--share 0.78] [--pack F] [--json F]

A (layer, W, B) whose shape W does not allow at that batch (AX: W must divide n2) is listed as
such; each point's buffers are grown to the layer by ``fit_config``, as in bench/rtl_cycles.py.
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
from datetime import date
from pathlib import Path

from doping.config import BATCHES, load_config
from doping.estimate.baselines import fit_config
from doping.estimate.model import estimate
from doping.pack import read_pack
from doping.synth import flagship_layers

PTB_PACK = Path(__file__).resolve().parent.parent / "packs" / "ptb-h200-dkp-dropconnect25.dpack"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--stream-bytes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--share", type=float, default=0.78)
    ap.add_argument("--pack", default=str(PTB_PACK))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    base = load_config(args.config)
    layers = [(f"2600x1300 {name}", layer) for name, layer in flagship_layers(args.share)]
    layers += [(f"PTB {l.name}", l) for l in read_pack(args.pack).layers[:1]]  # the pack's layers share one shape
    rows = []
    print("| layer | factors (order) | W | B | interval | bound | interval / bound | first-vector latency | "
          "array in KP phases | lanes | energy (nJ) | area (mm²) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, layer in layers:
        (m1, n1), (m2, n2) = layer.factor_shapes
        shapes = f"{m1}×{n1}, {m2}×{n2} ({layer.order})" if layer.has_kp else "—"
        for w in args.stream_bytes:
            for b in BATCHES:
                cfg = replace(base, stream_bytes=w, batch=b)
                why = cfg.stream_problems(layer)
                if why:
                    print(f"| {name} | {shapes} | {w} | {b} | — | | | | | | | "
                          f"({why[0].split(' (')[0]}) |")
                    continue
                e = estimate(layer, fit_config(cfg, layer))
                row = {"layer": name, "factors": layer.factor_shapes, "order": layer.order, "stream_bytes": w,
                       "batch": b, "interval_cycles": e.interval_cycles, "bound": e.bound,
                       "latency_cycles": e.latency_cycles, "array_kp": e.utilisation.array_kp,
                       "lanes": e.utilisation.lanes, "energy_nj": e.energy_pj / 1e3, "area_mm2": e.area_mm2}
                rows.append(row)
                print(f"| {name} | {shapes} | {w} | {b} | {e.interval_cycles:,.1f} | "
                      f"{e.bound:,} | {e.interval_cycles / e.bound:.3f} | {e.latency_cycles:,} | "
                      f"{e.utilisation.array_kp:.1%} | {e.utilisation.lanes:.1%} | {e.energy_pj / 1e3:.1f} | "
                      f"{e.area_mm2:.2f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": str(date.today()), "machine": platform.node(),
            "command": "python bench/batch_sweep.py --config " + args.config + " --stream-bytes "
                       + " ".join(map(str, args.stream_bytes)) + f" --share {args.share:g}", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
