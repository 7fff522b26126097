"""Fit and check the estimator's logic-area model against yosys cell counts.

For each config: generate the Verilog, count gate-level cells with yosys (memories kept as
macros), price them with the [N45] cell areas. The per-PE area comes from the array module, the
per-lane area from the lane modules, and the top-level remainder is fitted as
fixed + per_edge * (rows + cols) by least squares. The model is then compared with yosys on every
config (fit and held-out); the error is reported. Writes python/doping/estimate/area_fit.json.
The LSTM top's extra logic (cell unit, sequencer, bias stage) is the difference between a design
with and without ``lstm_cell`` at the same config, measured at LSTM_CONFIGS, and per cell-unit
lane beyond the first (``stream_bytes`` W: the cell's data path and the bias stage once per lane)
at LSTM_LANE_CONFIG (``--lstm`` measures only that and updates the file's ``lstm_cell`` and
``per_cell_lane`` entries). Wide streams (``stream_bytes`` W) are
measured at STREAM_CONFIG for W = 1, 2, 4, 8 (``--stream``): the logic outside the lanes (W output
pipelines, the beat's bank steering) costs ``per_stream_byte`` per element beyond the first (the
least-squares slope), and each lane ``per_window_byte`` per input-window element beyond X_WINDOW
(W-slot writes into a window of ``AccelConfig.x_window`` elements). Batch mode (``batch`` B) is
measured at BATCH_CONFIG for B = 1, 2, 4, 8 (``--batch``): each lane gains a window and a MAC per
vector of a batch (``per_lane_batch`` per lane per vector beyond the first), the rest of the
design its batch addressing and SEND's choice of a row sum in the word (``per_batch``), both
least-squares slopes.

  python bench/area_model.py [--out python/doping/estimate/area_fit.json] [--lstm] [--stream] [--batch]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from doping.config import AccelConfig
from doping.estimate.model import cell_area_um2
from doping.hw.tools import yosys_cells
from doping.hw.verilog import TOP, generate

CAP = dict(max_m=256, max_n=256, max_factor=256, max_intermediate=256, max_nnz=4096)
FIT = [(1, 1, 1), (2, 2, 1), (2, 3, 2), (4, 4, 2), (3, 5, 4)]
HELD_OUT = [(6, 4, 3), (8, 8, 8)]
LSTM_CONFIGS = [(2, 2, 1), (4, 4, 2)]
LSTM_LANE_CONFIG, CELL_LANES = (4, 4, 4), (1, 2, 4)  # the cell unit's W lanes (stream_bytes)
STREAM_CONFIG, STREAM_BYTES = (4, 8, 8), (1, 2, 4, 8)
BATCH_CONFIG, BATCHES = (4, 4, 4), (1, 2, 4, 8)


def _module_areas(cfg):
    with tempfile.TemporaryDirectory() as tmp:
        generate(cfg, tmp)
        mods = yosys_cells(Path(tmp) / f"{TOP}.v", TOP, Path(tmp) / "stat.json")
    return {name: cell_area_um2(m["by_type"]) for name, m in mods.items()}, sum(m["cells"] for m in mods.values())


def measure_lstm(r, c, l, w=1):
    """Logic of the LSTM top beyond the mat-vec accelerator at one config (two resident layers,
    ``w`` elements a beat: the cell unit's lanes)."""
    base = dict(rows=r, cols=c, lanes=l, resident_layers=2, stream_bytes=w, **CAP)
    with_cell, _ = _module_areas(AccelConfig(lstm_cell=1, **base))
    without, _ = _module_areas(AccelConfig(**base))
    return {"config": [r, c, l], "stream_bytes": w, "lstm_um2": sum(with_cell.values()), "accel_um2": sum(without.values()),
            "cell_um2": sum(v for k, v in with_cell.items() if k.endswith(".cell")),
            "delta_um2": sum(with_cell.values()) - sum(without.values())}


def _lanes_and_rest(cfg):
    """Logic of the accelerator at ``cfg``: the total, the lanes, the rest (µm²)."""
    area, _ = _module_areas(cfg)
    total, lanes = sum(area.values()), sum(v for k, v in area.items() if ".lane" in k)
    return {"config": [cfg.rows, cfg.cols, cfg.lanes], "total_um2": total, "lanes_um2": lanes,
            "rest_um2": total - lanes}


def measure_stream(w):
    """Logic of the accelerator at STREAM_CONFIG with ``w`` elements a beat: the lanes, the rest."""
    r, c, l = STREAM_CONFIG
    cfg = AccelConfig(rows=r, cols=c, lanes=l, stream_bytes=w, **CAP)
    return {"stream_bytes": w, "x_window": cfg.x_window, **_lanes_and_rest(cfg)}


def measure_batch(b):
    """Logic of the accelerator at BATCH_CONFIG with batch ``b``: the lanes, the rest."""
    r, c, l = BATCH_CONFIG
    return {"batch": b, **_lanes_and_rest(AccelConfig(rows=r, cols=c, lanes=l, batch=b, **CAP))}


def _slope(x, y) -> float:
    """Least-squares slope of y over x through the origin."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(x @ y / (x @ x)) if x @ x else 0.0


def measure(r, c, l):
    cfg = AccelConfig(rows=r, cols=c, lanes=l, **CAP)
    area, cells = _module_areas(cfg)
    array = sum(v for k, v in area.items() if k.endswith(".array"))
    lanes = sum(v for k, v in area.items() if ".lane" in k)
    top = area[TOP]
    return {"config": [r, c, l], "array_um2": array, "lanes_um2": lanes, "top_um2": top,
            "total_um2": array + lanes + top, "cells": cells}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="python/doping/estimate/area_fit.json")
    ap.add_argument("--lstm", action="store_true", help="measure only the LSTM top's extra logic")
    ap.add_argument("--stream", action="store_true", help="measure only the cost of wide streams")
    ap.add_argument("--batch", action="store_true", help="measure only the cost of batch mode")
    args = ap.parse_args()
    if args.batch:
        out = json.loads(Path(args.out).read_text())
        checks = [measure_batch(b) for b in BATCHES]
        b0, lanes = checks[0], BATCH_CONFIG[2]
        fit = out["um2"]
        fit["per_lane_batch"] = _slope([lanes * (m["batch"] - 1) for m in checks],
                                       [m["lanes_um2"] - b0["lanes_um2"] for m in checks])
        fit["per_batch"] = _slope([m["batch"] - 1 for m in checks], [m["rest_um2"] - b0["rest_um2"] for m in checks])
        out["batch_checks"] = checks
        out["batch_date"] = str(date.today())
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        for m in checks:
            model = b0["total_um2"] + (fit["per_lane_batch"] * lanes + fit["per_batch"]) * (m["batch"] - 1)
            print(f"B = {m['batch']}: yosys {m['total_um2']:.0f} µm² (lanes {m['lanes_um2']:.0f}), model "
                  f"{model:.0f} µm² ({100 * (model / m['total_um2'] - 1):+.1f} %)")
        return
    if args.stream:
        out = json.loads(Path(args.out).read_text())
        checks = [measure_stream(w) for w in STREAM_BYTES]
        b, lanes = checks[0], STREAM_CONFIG[2]
        fit = out["um2"]
        fit["per_stream_byte"] = _slope([m["stream_bytes"] - 1 for m in checks],
                                        [m["rest_um2"] - b["rest_um2"] for m in checks])
        fit["per_window_byte"] = _slope([lanes * (m["x_window"] - b["x_window"]) for m in checks],
                                        [m["lanes_um2"] - b["lanes_um2"] for m in checks])
        out["stream_checks"] = checks
        out["stream_date"] = str(date.today())
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        for m in checks:
            model = (b["total_um2"] + fit["per_stream_byte"] * (m["stream_bytes"] - 1)
                     + fit["per_window_byte"] * lanes * (m["x_window"] - b["x_window"]))
            print(f"W = {m['stream_bytes']} (window {m['x_window']}): yosys {m['total_um2']:.0f} µm², model "
                  f"{model:.0f} µm² ({100 * (model / m['total_um2'] - 1):+.1f} %)")
        return
    if args.lstm:
        out = json.loads(Path(args.out).read_text())
        checks = [measure_lstm(*k) for k in LSTM_CONFIGS]
        out["um2"]["lstm_cell"] = float(np.mean([m["delta_um2"] for m in checks]))
        lanes = [measure_lstm(*LSTM_LANE_CONFIG, w) for w in CELL_LANES]
        out["um2"]["per_cell_lane"] = _slope([m["stream_bytes"] - 1 for m in lanes],
                                             [m["delta_um2"] - lanes[0]["delta_um2"] for m in lanes])
        checks += lanes
        out["lstm_checks"] = checks
        out["lstm_date"] = str(date.today())
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        for m in checks:
            print(f"R×C×L {'×'.join(map(str, m['config']))}, W {m['stream_bytes']}: LSTM top {m['lstm_um2']:.0f} µm², accelerator "
                  f"{m['accel_um2']:.0f} µm², difference {m['delta_um2']:.0f} µm² (cell module {m['cell_um2']:.0f})")
        return
    rows = {tuple(k): measure(*k) for k in FIT + HELD_OUT}
    per_pe = float(np.mean([rows[k]["array_um2"] / (k[0] * k[1]) for k in FIT]))
    per_lane = float(np.mean([rows[k]["lanes_um2"] / k[2] for k in FIT]))
    a = np.array([[1.0, k[0] + k[1]] for k in FIT])
    fixed, per_edge = np.linalg.lstsq(a, np.array([rows[k]["top_um2"] for k in FIT]), rcond=None)[0]
    fit = {"per_pe": per_pe, "per_lane": per_lane, "per_edge": float(per_edge), "fixed": float(fixed)}
    checks = []
    for k, m in rows.items():
        model = per_pe * k[0] * k[1] + per_edge * (k[0] + k[1]) + per_lane * k[2] + fixed
        checks.append({"config": list(k), "held_out": k in HELD_OUT, "yosys_um2": m["total_um2"],
                       "model_um2": model, "error": model / m["total_um2"] - 1, "cells": m["cells"]})
    prev = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    out = {**prev, "date": str(date.today()), "tool": "yosys 0.23 (Debian), memories as macros, [N45] cell areas",
           "capacities": CAP, "um2": {**prev.get("um2", {}), **fit}, "checks": checks}  # --lstm/--stream terms kept
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("| R×C×L | held out | yosys logic µm² | model µm² | error |")
    print("|---|---|---|---|---|")
    for c in checks:
        print(f"| {'×'.join(map(str, c['config']))} | {'yes' if c['held_out'] else 'no'} | {c['yosys_um2']:.0f} | "
              f"{c['model_um2']:.0f} | {100 * c['error']:+.1f} % |")


if __name__ == "__main__":
    main()
