"""Area, clock and power of generated designs from real cell libraries (doping.ppa: yosys to the
library's cells, memories from its SRAM macros, OpenSTA), beside the fast estimator's figures for
the same design at the same node, so that the estimator's error is on record.

  python bench/stdcell_ppa.py --configs minimal "minimal:rows=4,cols=4,lanes=4" --libs sky130 nangate45 \
      --json docs/stdcell_ppa.json --md docs/stdcell_ppa.md

A config is a preset or a TOML file, optionally with fields overridden (``NAME:field=value,...``).
Each (config, library, flat or hierarchical) is one ``doping.ppa.stdcell.synthesize`` at
``--clock-ns`` (default: the library's target in ``TARGET_NS``; abc maps and sizes for that
period); fmax is 1 / (period - worst slack) of that netlist. Rows already in ``--json`` for other
triples are kept. The estimator's figures: ``estimate.model`` at the library's node, from its
rules (node-scaled) and from the calibration that ``bench/calibrate.py`` fits to these rows.
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
from doping.estimate.model import rule_area_mm2, rule_fmax_mhz
from doping.hw.verilog import TOP, generate
from doping.ppa.stdcell import libraries, library_area_um2, resolve_library, synthesize


def estimator_figures(cfg) -> dict:
    area = rule_area_mm2(cfg)
    logic = area.pop("logic") * 1e6
    sram = sum(area.values()) * 1e6
    return {"logic_um2": logic, "sram_um2": sram, "area_mm2": (logic + sram) * 1e-6, "fmax_mhz": rule_fmax_mhz(cfg)}


#: abc's delay target per library (ns): ``Library.target_ns``, near what the library reaches on
#: these designs, so that abc sizes for a clock the design can meet
TARGET_NS = {name: lib.target_ns for name, lib in libraries().items()}


def config_from_spec(spec: str):
    """``NAME[:field=value,...]``: a preset or TOML file with fields overridden."""
    name, _, over = spec.partition(":")
    cfg = load_config(name)
    if not over:
        return cfg
    fields = {}
    for item in over.split(","):
        key, _, value = item.partition("=")
        fields[key.strip()] = float(value) if key.strip() == "clock_mhz" else int(value)
    return replace(cfg, **fields)


#: the pack whose Verilator run sets the activity of power rows (``--pack-vectors``): one doped
#: layer that fits every small config (48 x 40 at 6x, A 8x8, B 6x5, the rest in the overlay)
POWER_PACK = dict(shape=(48, 40), ratio=6.0, factor_shapes=((8, 8), (6, 5)), seed=0)


def power_layer():
    """The layer of ``POWER_PACK``."""
    from doping.synth import synth_layer

    return synth_layer(POWER_PACK["shape"], POWER_PACK["ratio"], factor_shapes=POWER_PACK["factor_shapes"],
                       seed=POWER_PACK["seed"])


def power_pack(path: Path):
    from doping.pack import write_pack

    layer = power_layer()
    write_pack(path, [layer])
    return layer


def row(config: str, lib_name: str, clock_ns: float, activity: float, hierarchical: bool = False,
        pack_vectors: int = 0) -> dict:
    cfg = config_from_spec(config)
    lib = resolve_library(lib_name)
    power = {}
    with tempfile.TemporaryDirectory(prefix="doping-ppa-") as tmp:
        man = generate(cfg, Path(tmp) / "rtl")
        t0 = time.time()
        rates, source = None, "assumed"
        if pack_vectors:
            from doping.ppa.activity import pack_activity

            layer = power_pack(Path(tmp) / "power.dpack")
            activity, source, rates = pack_activity(Path(tmp) / "power.dpack", cfg, pack_vectors)
            power = {"pack": {**POWER_PACK, "vectors": pack_vectors, "layer": layer.name}}
        r = synthesize(Path(tmp) / "rtl" / man["files"][0], TOP, lib, clock_ns, Path(tmp) / "flow", activity=activity,
                       hierarchical=hierarchical, sram_accesses_per_cycle=rates, activity_source=source)
        seconds = time.time() - t0
    est = estimator_figures(replace(cfg, tech_nm=lib.node_nm))
    est_lib = library_area_um2(cfg, lib)
    flow = r.as_dict()
    flow["critical_path"].pop("cells")
    return {"config": config, "library": lib.name, "mode": "hierarchical" if hierarchical else "flat",
            "config_fields": cfg.as_dict(), "corner": lib.corner, "node_nm": lib.node_nm, "flow": flow,
            "estimator": est, "library_estimate": est_lib, "seconds": round(seconds),
            "error_pct": {"area": 100 * (est["area_mm2"] / r.area_mm2 - 1),
                          "area_library_estimate": 100 * (est_lib["area_mm2"] / r.area_mm2 - 1),
                          "logic_area": 100 * (est["logic_um2"] / r.cell_area_um2 - 1) if r.cell_area_um2 else None,
                          "fmax": 100 * (est["fmax_mhz"] / r.fmax_mhz - 1)},
            "machine": f"{platform.machine()}, {platform.node()}", "date": str(date.today()), **power}


def table(rows: list[dict]) -> str:
    out = ["| config | library (corner) | flow | cells | cell area um² | SRAM um² (macros) | area mm² | estimator mm², node-scaled "
           "(err) | estimator mm², library gates + macros (err) | critical path (start → end, cells) | fmax MHz | "
           "estimator MHz (err) | power mW (int / sw / leak / SRAM) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, e, err = r["flow"], r["estimator"], r["error_pct"]
        cp, p = f["critical_path"], f["power_mw"]
        macros = sum(m["count"] for m in f["memories"])
        out.append(f"| {r['config']} | {r['library']} ({r['corner']}) | {r.get('mode', 'flat')}, {f['clock_ns']:g} ns | "
                   f"{f['cells']:,} | {f['cell_area_um2']:,.0f} | "
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
    ap.add_argument("--clock-ns", type=float, help="abc's delay target (default: TARGET_NS of the library)")
    ap.add_argument("--hierarchical", action="store_true", help="map each module on its own (faster; nets across modules unbuffered)")
    ap.add_argument("--activity", type=float, default=0.1)
    ap.add_argument("--pack-vectors", type=int, default=0,
                    help="power from a Verilator run of POWER_PACK with this many vectors (activity and SRAM "
                         "accesses) instead of --activity")
    ap.add_argument("--json", default="docs/stdcell_ppa.json")
    ap.add_argument("--md", default="docs/stdcell_ppa.md")
    a = ap.parse_args()
    path = Path(a.json)
    for config in a.configs:
        for lib in a.libs:
            clock_ns = a.clock_ns or TARGET_NS.get(lib, 5.0)
            r = row(config, lib, clock_ns, a.activity, a.hierarchical, a.pack_vectors)
            r["command"] = (f"python bench/stdcell_ppa.py --configs '{config}' --libs {lib} --clock-ns {clock_ns:g} "
                            + (f"--pack-vectors {a.pack_vectors}" if a.pack_vectors else f"--activity {a.activity:g}")
                            + (" --hierarchical" if a.hierarchical else ""))
            key = (config, lib, r["mode"])
            rows = json.loads(path.read_text()) if path.is_file() else []  # read late: other runs may add rows
            rows = [x for x in rows if (x["config"], x["library"], x.get("mode", "flat")) != key] + [r]
            path.write_text(json.dumps(rows, indent=1) + "\n")
            Path(a.md).write_text("Generated by `bench/stdcell_ppa.py` (commands per row in docs/stdcell_ppa.json).\n\n"
                                  + table(rows))
            print(table([r]), flush=True)


if __name__ == "__main__":
    main()
