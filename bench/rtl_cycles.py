"""Simulated cycles of one 2600x1300 @ 25x vector (synthetic pack) on the default config, against
the resource bound max(KP MACs / (rows*cols), nnz / lanes), and the array's utilisation in the
Kronecker phases. Runs the generated Verilog under Verilator (cocotb) and the estimator's model.

  python bench/rtl_cycles.py [--config default] [--vectors 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

from doping.config import load_config
from doping.estimate import schedule
from doping.pack import write_pack
from doping.sim.runner import run
from doping.synth import synth_layer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--vectors", type=int, default=2)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    cfg = load_config(args.config)
    layer = synth_layer((2600, 1300), 25, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        pack = write_pack(Path(tmp) / "l.dpack", [layer])
        r = run([pack], cfg, vectors=args.vectors, seed=0)
    s = schedule(layer, cfg)
    measured = r["cycles_per_vector"][0]
    kp_cycles = r["phase_cycles"][0]["G1"] + r["phase_cycles"][0]["G2"]
    util = s.kp_macs / (kp_cycles * cfg.rows * cfg.cols)
    out = {"date": str(date.today()), "config": cfg.as_dict(), "layer": "2600x1300 @25x synthetic seed 0",
           "factors": layer.factor_shapes, "order": layer.order, "nnz": layer.nnz, "mismatches": r["mismatches"],
           "measured_cycles": r["cycles_per_vector"], "phase_cycles": r["phase_cycles"][0],
           "model_cycles": s.cycles, "bound": s.bound, "ratio_to_bound": measured / s.bound,
           "kp_macs": s.kp_macs, "array_utilisation_kp_phases": util, "wall_seconds": r["wall_seconds"]}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
