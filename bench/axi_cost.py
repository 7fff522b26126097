"""What the AXI4-Stream IP wrapper (hw/axi.py) costs over the bare core, per preset: logic area from
yosys generic cells at 45 nm ([N45] cell areas, memories kept as macros, so the SRAM is the same),
gate levels of the longest path, and cycles: the same pack and vectors through the core's bench
(tb_accel) and the cocotbext-axi bench (tb_axi), no pauses.

    python bench/axi_cost.py --configs minimal default [--json docs/axi_cost.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from doping.config import load_config
from doping.estimate.designs import fit_config
from doping.estimate.model import cell_area_um2
from doping.hw.tools import yosys_synth
from doping.hw.verilog import TOP, generate
from doping.pack import write_pack
from doping.sim.runner import run, run_axi
from doping.synth import synth_layer


def synth_area(cfg) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        man = generate(cfg, tmp, axi=True)
        out = {}
        for name, top, f in (("core", TOP, man["files"][0]), ("axi", man["ip"]["top"], man["ip"]["files"][0])):
            mods, levels = yosys_synth(Path(tmp) / f, top, Path(tmp) / f"{name}.json")
            out[name] = {"logic_um2": sum(cell_area_um2(m["by_type"]) for m in mods.values()),
                         "cells": sum(m["cells"] for m in mods.values()), "levels": levels}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["minimal", "default"])
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            base = load_config(name)
            layer = synth_layer((48, 40), 4, seed=1)
            cfg = fit_config(base, layer)
            pack = Path(tmp) / f"{name}.dpack"
            write_pack(pack, [layer])
            t0 = time.time()
            area = synth_area(cfg)
            core = run([pack], cfg, vectors=args.vectors)
            axi = run_axi([pack], cfg, vectors=args.vectors)
            assert core.mismatches == 0 and axi.mismatches == 0
            rows.append({"config": name, "layer": "48x40 @4x (synth seed 1)", **area,
                         "logic_overhead": area["axi"]["logic_um2"] / area["core"]["logic_um2"] - 1,
                         "core_monitor_cycles": core.total_cycles, "axi_cycles": axi.cycles,
                         "core_interval_cycles": core.interval_cycles, "seconds": round(time.time() - t0)})
            print(json.dumps(rows[-1]))
    meta = {"command": "python bench/axi_cost.py " + " ".join(f"--configs {' '.join(args.configs)}".split()),
            "machine": platform.node(), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
