"""Area, clock and power of generated designs from real cell libraries (doping.ppa: yosys to the
library's cells, memories from its SRAM macros, OpenSTA), beside the fast estimator's figures for
the same design at the same node, so that the estimator's error is on record.

  python bench/stdcell_ppa.py --configs minimal --libs sky130 nangate45 osu018 --clock-ns 5 \
      --json docs/stdcell_ppa.json --md docs/stdcell_ppa.md

Each (config, library) is one ``doping.ppa.stdcell.synthesize`` at ``--clock-ns`` (abc maps and
sizes for that period); fmax is 1 / (period - worst slack) of that netlist. Rows already in
``--json`` for other pairs are kept. The estimator's figures: ``estimate.model`` at the library's
node (its 45 nm tables scaled by ``node_scale``), with its own gate-level clock rule.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from doping.config import load_config
from doping.estimate.model import fmax_estimate_mhz, logic_area_um2
from doping.estimate.tables import SRAM_UM2_PER_BIT, node_scale
from doping.hw.verilog import TOP, generate
from doping.ppa.stdcell import library_area_um2, resolve_library, synthesize


def estimator_figures(cfg) -> dict:
    _, area = node_scale(cfg.tech_nm)
    logic = logic_area_um2(cfg) * area
    sram = sum(cfg.sram_bits().values()) * SRAM_UM2_PER_BIT * area
    return {"logic_um2": logic, "sram_um2": sram, "area_mm2": (logic + sram) * 1e-6, "fmax_mhz": fmax_estimate_mhz(cfg)}


def row(config: str, lib_name: str, clock_ns: float, activity: float) -> dict:
    cfg = load_config(config)
    lib = resolve_library(lib_name)
    with tempfile.TemporaryDirectory(prefix="doping-ppa-") as tmp:
        man = generate(cfg, Path(tmp) / "rtl")
        t0 = time.time()
        r = synthesize(Path(tmp) / "rtl" / man["files"][0], TOP, lib, clock_ns, Path(tmp) / "flow", activity=activity)
        seconds = time.time() - t0
    est = estimator_figures(replace(cfg, tech_nm=lib.node_nm))
    est_lib = library_area_um2(cfg, lib)
    flow = r.as_dict()
    flow["critical_path"].pop("cells")
    return {"config": config, "library": lib.name, "corner": lib.corner, "node_nm": lib.node_nm, "flow": flow,
            "estimator": est, "library_estimate": est_lib, "seconds": round(seconds),
            "error_pct": {"area": 100 * (est["area_mm2"] / r.area_mm2 - 1),
                          "area_library_estimate": 100 * (est_lib["area_mm2"] / r.area_mm2 - 1),
                          "logic_area": 100 * (est["logic_um2"] / r.cell_area_um2 - 1) if r.cell_area_um2 else None,
                          "fmax": 100 * (est["fmax_mhz"] / r.fmax_mhz - 1)},
            "machine": f"{platform.machine()}, {platform.node()}", "date": str(date.today())}


def table(rows: list[dict]) -> str:
    out = ["| config | library (corner) | cells | cell area um² | SRAM um² (macros) | area mm² | estimator mm², node-scaled "
           "(err) | estimator mm², library gates + macros (err) | critical path (start → end, cells) | fmax MHz | "
           "estimator MHz (err) | power mW (int / sw / leak / SRAM) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, e, err = r["flow"], r["estimator"], r["error_pct"]
        cp, p = f["critical_path"], f["power_mw"]
        macros = sum(m["count"] for m in f["memories"])
        out.append(f"| {r['config']} | {r['library']} ({r['corner']}) | {f['cells']:,} | {f['cell_area_um2']:,.0f} | "
                   f"{f['sram_area_um2']:,.0f} ({macros}) | {f['area_mm2']:.4f} | {e['area_mm2']:.4f} "
                   f"({err['area']:+.0f} %) | {r['library_estimate']['area_mm2']:.4f} ({err['area_library_estimate']:+.0f} %) | "
                   f"{cp['start_register']} → {cp['end_register']}, {cp['levels']} | "
                   f"{f['fmax_mhz']:.0f} | {e['fmax_mhz']:.0f} ({err['fmax']:+.0f} %) | {p['total']:.2f} "
                   f"({p['internal']:.2f} / {p['switching']:.2f} / {p['leakage']:.3f} / {p['sram']:.2f}) |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["minimal"])
    ap.add_argument("--libs", nargs="+", default=["sky130", "nangate45", "osu018"])
    ap.add_argument("--clock-ns", type=float, default=5.0)
    ap.add_argument("--activity", type=float, default=0.1)
    ap.add_argument("--json", default="docs/stdcell_ppa.json")
    ap.add_argument("--md", default="docs/stdcell_ppa.md")
    a = ap.parse_args()
    path = Path(a.json)
    rows = json.loads(path.read_text()) if path.is_file() else []
    for config in a.configs:
        for lib in a.libs:
            r = row(config, lib, a.clock_ns, a.activity)
            r["command"] = (f"python bench/stdcell_ppa.py --configs {config} --libs {lib} --clock-ns {a.clock_ns:g} "
                            f"--activity {a.activity:g}")
            rows = [x for x in rows if (x["config"], x["library"]) != (config, lib)] + [r]
            path.write_text(json.dumps(rows, indent=1) + "\n")
            Path(a.md).write_text("Generated by `bench/stdcell_ppa.py` (commands per row in docs/stdcell_ppa.json).\n\n"
                                  + table(rows))
            print(table([r]), flush=True)


if __name__ == "__main__":
    main()
