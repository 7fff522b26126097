"""Fit the estimator's clock and area to the standard-cell flow, and show its error on configs the
fit did not see (issue 27).

  python bench/calibrate.py --fit minimal default

Reads the flat-flow rows of docs/stdcell_ppa.json (``bench/stdcell_ppa.py``), fits per
library ``period_ns`` (the mean critical path of the fit configs) and ``logic_scale`` (the mean
ratio of the flow's cell area to the estimator's cells in the library) into
python/doping/estimate/calibration.json, then prices every row's config with the calibrated
estimator and writes docs/calibration.md: area and fmax, estimator vs flow, error in %, with the
uncalibrated rules' error beside it. The library's NAND2 and flip-flop areas are read from its
Liberty file here, once, and stored in calibration.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stdcell_ppa import TARGET_NS, config_from_spec  # noqa: E402

from doping.estimate import calibration  # noqa: E402
from doping.estimate.calibration import LibraryCalibration, cells_and_macros_um2  # noqa: E402
from doping.estimate.model import logic_area_um2  # noqa: E402
from doping.ppa.macros import read_liberty_text  # noqa: E402
from doping.ppa.stdcell import cell_info, resolve_library  # noqa: E402


def library_base(name: str) -> LibraryCalibration:
    lib = resolve_library(name)
    info = cell_info(read_liberty_text(lib.cells))
    for s in lib.srams:
        if not (calibration.PDK / s.name).is_file():
            raise SystemExit(f"{name}: macro {s.name} is not shipped in {calibration.PDK}")
    return LibraryCalibration(library=name, corner=lib.corner, node_nm=lib.node_nm, period_ns=0.0, logic_scale=1.0,
                              nand2_um2=info.nand2_um2, flop_um2=info.flop_um2,
                              srams=tuple(s.name for s in lib.srams), fit_configs=(), command="")


def flow_rows(path: Path) -> list[dict]:
    """The calibration's data: the flat-flow rows of ``bench/stdcell_ppa.py`` at each library's
    delay target (``TARGET_NS``; the hierarchical flow leaves nets across modules unbuffered)."""
    return [r for r in json.loads(path.read_text())
            if r.get("mode") == "flat" and r["flow"]["clock_ns"] == TARGET_NS.get(r["library"])]


def fit(rows: list[dict], fit_configs: list[str], base: LibraryCalibration, command: str = "") -> LibraryCalibration:
    """``base`` (its library's cell areas and macros) with ``period_ns`` and ``logic_scale`` fitted
    to the flow rows of ``fit_configs`` in that library: the means of the timed critical paths and
    of the flow's cell area over the estimator's cells before scaling."""
    base = replace(base, logic_scale=1.0)
    mine = [r for r in rows if r["library"] == base.library and r["config"] in fit_configs]
    ratios = []
    for r in mine:
        cfg = config_from_spec(r["config"])
        cells, _ = cells_and_macros_um2(cfg, logic_area_um2(cfg), base)
        ratios.append(r["flow"]["cell_area_um2"] / cells)
    periods = [r["flow"]["clock_ns"] - r["flow"]["worst_slack_ns"] for r in mine]
    return replace(base, period_ns=round(statistics.mean(periods), 4), logic_scale=round(statistics.mean(ratios), 4),
                   fit_configs=tuple(fit_configs), command=command)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="docs/stdcell_ppa.json")
    ap.add_argument("--fit", nargs="+", default=["minimal", "default"], help="configs the fit uses")
    ap.add_argument("--out", default=str(calibration.CALIBRATION))
    ap.add_argument("--md", default="docs/calibration.md")
    a = ap.parse_args()
    rows = flow_rows(Path(a.rows))
    command = "python bench/calibrate.py --fit " + " ".join(a.fit)
    libs = {}
    for name in sorted({r["library"] for r in rows}):
        n_fit = sum(r["library"] == name and r["config"] in a.fit for r in rows)
        if n_fit != len(a.fit):
            print(f"{name}: {n_fit} of {len(a.fit)} fit configs have flow rows; not calibrated")
            continue
        libs[name] = fit(rows, a.fit, library_base(name), command)
        print(f"{name}: period {libs[name].period_ns} ns, logic x{libs[name].logic_scale}")
    data = {"date": str(date.today()), "command": command, "rows": a.rows,
            "libraries": {n: {f.name: getattr(c, f.name) for f in fields(c) if f.name != "library"}
                          for n, c in libs.items()}}
    Path(a.out).write_text(json.dumps(data, indent=1, default=list) + "\n")
    calibration.calibrations.cache_clear()
    Path(a.md).write_text(report(rows, a.fit))
    print(Path(a.md).read_text())


def describe(spec: str, cfg) -> str:
    """A preset's name, or what an overridden config is."""
    if ":" not in spec:
        return spec
    return (f"{cfg.rows}×{cfg.cols}, {cfg.lanes} lanes, W {cfg.stream_bytes}, B {cfg.batch}, "
            f"{sum(cfg.sram_bits().values()) / 8192:.1f} KiB")


def report(rows: list[dict], fit: list[str]) -> str:
    from doping.estimate.model import area_mm2, fmax_estimate_mhz

    out = ["Generated by `python bench/calibrate.py` from the flat-flow rows of "
           "[stdcell_ppa.json](stdcell_ppa.json) at each library's delay target (`bench/stdcell_ppa.py`, each row's "
           "command there). "
           "Estimator: `doping.estimate.model` with python/doping/estimate/calibration.json at the library's node; "
           "rule: the uncalibrated estimator (SRAM at one density, clock from gate levels x FO4).\n",
           "| config | library | fit or held out | flow area mm² | estimator mm² (err) | rule mm² (err) | "
           "flow fmax MHz (critical path) | estimator MHz (err) | rule MHz (err) |",
           "|---|---|---|---|---|---|---|---|---|"]
    errs = {"area": [], "fmax": []}
    for r in sorted(rows, key=lambda r: (r["library"], r["config"] not in fit, r["config"])):
        cfg = replace(config_from_spec(r["config"]), tech_nm=r["node_nm"])
        f = r["flow"]
        est_area, est_fmax = sum(area_mm2(cfg).values()), fmax_estimate_mhz(cfg)
        e_area, e_fmax = 100 * (est_area / f["area_mm2"] - 1), 100 * (est_fmax / f["fmax_mhz"] - 1)
        held = r["config"] not in fit
        if held:
            errs["area"].append(abs(e_area))
            errs["fmax"].append(abs(e_fmax))
        cp = f["critical_path"]
        out.append(f"| {describe(r['config'], cfg)} | {r['library']} | {'held out' if held else 'fit'} | {f['area_mm2']:.4f} | "
                   f"{est_area:.4f} ({e_area:+.1f} %) | {r['estimator']['area_mm2']:.4f} "
                   f"({r['error_pct']['area']:+.0f} %) | {f['fmax_mhz']:.0f} ({cp['start_register']} → "
                   f"{cp['end_register']}, {cp['levels']} cells) | {est_fmax:.0f} ({e_fmax:+.1f} %) | "
                   f"{r['estimator']['fmax_mhz']:.0f} ({r['error_pct']['fmax']:+.0f} %) |")
    if errs["area"]:
        out.append(f"\nHeld out ({len(errs['area'])} rows): largest |error| area {max(errs['area']):.1f} %, "
                   f"fmax {max(errs['fmax']):.1f} %.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
