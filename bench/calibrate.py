"""Fit the estimator's clock and area to the standard-cell flow, and show its error on configs the
fit did not see (issue 27).

  python bench/calibrate.py --fit minimal default --power-fit minimal default

Reads the flat-flow rows of docs/stdcell_ppa.json (``bench/stdcell_ppa.py``), fits per
library ``period_ns`` (the mean critical path of the fit configs) and ``logic_scale`` (the mean
ratio of the flow's cell area to the estimator's cells in the library) into
python/doping/estimate/calibration.json, then prices every row's config with the calibrated
estimator and writes docs/calibration.md: area and fmax, estimator vs flow, error in %, with the
uncalibrated rules' error beside it. The library's NAND2 and flip-flop areas are read from its
Liberty file here, once, and stored in calibration.json.

Power: from the rows whose activity a Verilator run of ``stdcell_ppa.POWER_PACK`` set
(``bench/stdcell_ppa.py --pack-vectors``), per library, least squares (non-negative) of the flow's
standard-cell dynamic energy per cycle (internal + switching over the pack's interval, less the
published per-action energies of the data path) on the estimator's two cell areas: the memories
kept in flip-flops (``flop_memory_pj_per_um2``) and the logic (``logic_pj_per_um2``) — clock pins
and clock tree, denser in flip-flops; ``leak_uw_per_um2`` is the flow's leakage over its cell
area, the mean over the fit configs. The SRAM macros are not fitted (their energies come from the
macro files with the estimator's access counts).
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
from stdcell_ppa import TARGET_NS, config_from_spec, power_layer  # noqa: E402

from doping.estimate import calibration  # noqa: E402
from doping.estimate.calibration import (LibraryCalibration, cells_and_macros_um2, macro_access_pj,  # noqa: E402
                                        macro_memories)
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


def power_terms(r: dict) -> dict:
    """One power row's data for the fit: per vector of ``POWER_PACK`` on the row's config at its
    node, the flow's cell dynamic energy and leakage (pJ, uW, at the flow's clock over the pack's
    interval), the estimator's regressors (its two cell areas, the data path's table energy) and
    its SRAM energy, and the flow's SRAM energy."""
    from doping.estimate.calibration import cells_um2
    from doping.estimate.cycles import schedule
    from doping.estimate.model import accesses, table_energy_pj

    cfg = replace(config_from_spec(r["config"]), tech_nm=r["node_nm"])
    layer = power_layer()
    s = schedule(layer, cfg)
    acc = accesses(layer, cfg, s)
    table = table_energy_pj(layer, cfg, s, acc)
    macros = macro_memories(cfg)
    flop_memories, logic = cells_um2(cfg, logic_area_um2(cfg))
    f = r["flow"]
    cycle_pj = f["clock_ns"]  # mW at the flow's clock -> pJ a cycle: x 1000 / MHz = x ns
    p = f["power_mw"]
    return {"cells_um2": f["cell_area_um2"], "interval": s.interval, "flop_memory_um2": flop_memories,
            "logic_um2": logic, "flow_cells_pj": (p["internal"] + p["switching"]) * cycle_pj * s.interval,
            "flow_leak_uw": p["leakage"] * 1e3, "flow_sram_pj": p["sram"] * cycle_pj * s.interval,
            "datapath_pj": sum(v for k, v in table.items() if k.removeprefix("sram_") not in macros),
            "macro_pj": sum(macro_access_pj(cfg, acc).values())
                        + sum(leak for _, leak in macros.values()) * s.interval * f["clock_ns"] * 1e-3}


def _nnls2(a, b) -> tuple[float, float]:
    """Least squares of ``a @ x = b`` over two non-negative unknowns: the unconstrained solution,
    or the better of the two one-term fits when it has a negative term."""
    import numpy as np

    x = np.linalg.lstsq(a, b, rcond=None)[0]
    if (x >= 0).all():
        return float(x[0]), float(x[1])
    best = None
    for j in (0, 1):
        col = a[:, j]
        v = max(float(col @ b / (col @ col)), 0.0)
        res = float(np.sum((b - v * col) ** 2))
        if best is None or res < best[0]:
            best = (res, j, v)
    _, j, v = best
    return (v, 0.0) if j == 0 else (0.0, v)


def fit_power(rows: list[dict], fit_configs: list[str], cal: LibraryCalibration) -> LibraryCalibration:
    """``cal`` with its power terms fitted to the power rows of ``fit_configs`` in its library."""
    import numpy as np

    mine = [power_terms(r) for r in rows if r["library"] == cal.library and r["config"] in fit_configs]
    a = np.array([[t["flop_memory_um2"], t["logic_um2"]] for t in mine])
    b = np.array([(t["flow_cells_pj"] - t["datapath_pj"]) / t["interval"] for t in mine])
    flop_memory, logic = _nnls2(a, b)
    leak = statistics.mean(t["flow_leak_uw"] / t["cells_um2"] for t in mine)
    return replace(cal, flop_memory_pj_per_um2=float(f"{flop_memory:.4g}"), logic_pj_per_um2=float(f"{logic:.4g}"),
                   leak_uw_per_um2=float(f"{leak:.4g}"), power_fit_configs=tuple(fit_configs))


def power_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "pack" in r]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="docs/stdcell_ppa.json")
    ap.add_argument("--fit", nargs="+", default=["minimal", "default"], help="configs the fit uses")
    ap.add_argument("--power-fit", nargs="+", default=["minimal", "default"],
                    help="configs the power fit uses (rows made with --pack-vectors)")
    ap.add_argument("--out", default=str(calibration.CALIBRATION))
    ap.add_argument("--md", default="docs/calibration.md")
    a = ap.parse_args()
    rows = flow_rows(Path(a.rows))
    command = "python bench/calibrate.py --fit " + " ".join(a.fit) + " --power-fit " + " ".join(a.power_fit)
    libs = {}
    for name in sorted({r["library"] for r in rows}):
        n_fit = sum(r["library"] == name and r["config"] in a.fit for r in rows)
        if n_fit != len(a.fit):
            print(f"{name}: {n_fit} of {len(a.fit)} fit configs have flow rows; not calibrated")
            continue
        libs[name] = fit(rows, a.fit, library_base(name), command)
        print(f"{name}: period {libs[name].period_ns} ns, logic x{libs[name].logic_scale}")
        n_power = sum(r["library"] == name and r["config"] in a.power_fit for r in power_rows(rows))
        if n_power == len(a.power_fit):
            libs[name] = fit_power(power_rows(rows), a.power_fit, libs[name])
            c = libs[name]
            print(f"{name}: a cycle {c.flop_memory_pj_per_um2} pJ/um2 of flip-flop memory, {c.logic_pj_per_um2} of "
                  f"logic; leakage {c.leak_uw_per_um2} uW/um2")
        else:
            print(f"{name}: {n_power} of {len(a.power_fit)} power-fit configs have power rows; power not calibrated")
    data = {"date": str(date.today()), "command": command, "rows": a.rows,
            "libraries": {n: {f.name: getattr(c, f.name) for f in fields(c)
                              if f.name != "library" and (c.has_power or f.name not in POWER_FIELDS)}
                          for n, c in libs.items()}}
    Path(a.out).write_text(json.dumps(data, indent=1, default=list) + "\n")
    calibration.calibrations.cache_clear()
    Path(a.md).write_text(report(rows, a.fit) + power_report(power_rows(rows), a.power_fit))
    print(Path(a.md).read_text())


POWER_FIELDS = ("flop_memory_pj_per_um2", "logic_pj_per_um2", "leak_uw_per_um2", "power_fit_configs")


def estimator_power_mw(r: dict) -> dict:
    """The calibrated estimator's power for a power row: ``POWER_PACK`` on the row's config at its
    node, at the flow's clock, by part (cells, SRAM, total; mW)."""
    from doping.estimate.model import estimate

    f = r["flow"]
    cfg = replace(config_from_spec(r["config"]), tech_nm=r["node_nm"], clock_mhz=1e3 / f["clock_ns"])
    e = estimate(power_layer(), cfg)
    parts = e.breakdown.energy_pj
    # dynamic energy at the flow's clock; leakage (priced at the estimator's clock) as a power
    dyn_mw = 1e-3 * cfg.clock_mhz / e.interval_cycles
    leak_mw = 1e-3 * e.clock_mhz / e.interval_cycles
    macros = macro_memories(cfg)
    sram = sum(v for k, v in parts.items() if k.removeprefix("sram_") in macros) * dyn_mw \
        + parts["sram_leakage"] * leak_mw
    total = sum(v for k, v in parts.items() if k not in ("leakage", "sram_leakage")) * dyn_mw \
        + (parts["leakage"] + parts["sram_leakage"]) * leak_mw
    return {"total": total, "sram": sram, "clock_mhz": cfg.clock_mhz}


def power_report(rows: list[dict], fit: list[str]) -> str:
    if not rows:
        return ""
    out = ["\nPower: the flow's rows with activity from a Verilator run of the pack `stdcell_ppa.POWER_PACK` "
           "(`--pack-vectors`), at the flow's clock (the library's delay target); the calibrated estimator on the same "
           "pack and config at that clock. SRAM: macro read/write energy at the pack's access rates plus macro leakage "
           "(flow) and the same from the estimator's access counts.\n",
           "| config | library | fit or held out | activity (toggles/bit/cycle) | flow mW (cells / SRAM) | "
           "estimator mW (cells / SRAM) | error total | error cells | error SRAM |", "|---|---|---|---|---|---|---|---|---|"]
    errs = []
    for r in sorted(rows, key=lambda r: (r["library"], r["config"] not in fit, r["config"])):
        cfg = config_from_spec(r["config"])
        p = r["flow"]["power_mw"]
        e = estimator_power_mw(r)
        flow_cells = p["total"] - p["sram"]
        est_cells = e["total"] - e["sram"]
        err = [100 * (x / y - 1) if y else 0.0 if not x else float("inf")
               for x, y in ((e["total"], p["total"]), (est_cells, flow_cells), (e["sram"], p["sram"]))]
        held = r["config"] not in fit
        if held:
            errs.append(abs(err[0]))
        out.append(f"| {describe(r['config'], cfg)} | {r['library']} | {'held out' if held else 'fit'} | "
                   f"{r['flow']['activity']:.4f} | {p['total']:.2f} ({flow_cells:.2f} / {p['sram']:.2f}) | "
                   f"{e['total']:.2f} ({est_cells:.2f} / {e['sram']:.2f}) | {err[0]:+.1f} % | {err[1]:+.1f} % | "
                   f"{err[2]:+.1f} % |")
    if errs:
        out.append(f"\nHeld out ({len(errs)} rows): largest |error| of total power {max(errs):.1f} %.")
    return "\n".join(out) + "\n"


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
