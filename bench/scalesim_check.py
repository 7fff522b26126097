"""The project's GEMM engine against SCALE-Sim 3.0 (issue 31): for the Kronecker GEMMs of a few
layers (G1, G2 as the cycle model tiles them: output rows x cols, reduction K), the exact cycle
model's cycles (== RTL: ``cycles.Gemm.cycles``, first FEED to last DRAIN, output-stationary with
two shadow banks per PE) beside SCALE-Sim's compute cycles ("Total Cycles", prefetch excluded) in
its output-, weight- and input-stationary dataflows on the same R x C array.

SCALE-Sim needs numpy < 2, so it runs in its own venv (``make scalesim-venv``:
build/scalesim-venv); this script drives it there through a subprocess.

    make scalesim-venv && python bench/scalesim_check.py [--json docs/scalesim_check.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from doping.config import PRESETS
from doping.estimate.cycles import gemms
from doping.pack import read_pack
from doping.synth import flagship_layers

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / "build" / "scalesim-venv" / "bin" / "python"
DATAFLOWS = ("os", "ws", "is")

#: SCALE-Sim's config: the array, on-chip buffers large enough that no layer stalls on them (the
#: project's buffers hold every operand), bandwidth computed (CALC), no sparsity, no custom layout.
CONFIG = """[general]
run_name = doping
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 4096
FilterSramSzkB: 4096
OfmapSramSzkB: 4096
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {df}
MemoryBanks: 1
ReadRequestBuffer: 512
WriteRequestBuffer: 512
[layout]
IfmapCustomLayout: False
FilterCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

#: Run inside the SCALE-Sim venv: argv = folder; prints {dataflow: [total cycles per layer]}.
RUNNER = """
import contextlib, io, json, os, sys
from scalesim.scale_sim import scalesim
d = sys.argv[1]
out = {}
for df in %r:
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=f"{d}/{df}.cfg", topology=f"{d}/topo.csv",
                     layout=f"{d}/layout.csv", input_type_gemm=True)
        s.run_scale(top_path=f"{d}/{df}")
    rows = open(f"{d}/{df}/doping/COMPUTE_REPORT.csv").read().strip().splitlines()[1:]
    out[df] = [int(r.split(",")[2]) for r in rows]
print(json.dumps(out))
""" % (DATAFLOWS,)


def cases():
    flag = flagship_layers()[0][1]
    ptb = read_pack(ROOT / "packs" / "ptb-h200-dkp-lstm25.dpack").layers[0]
    yield "flagship rule layer 2600x1300 @25x", flag, PRESETS["flagship"]
    yield "PTB 2x200 gate layer (ptb-h200-dkp-lstm25)", ptb, PRESETS["default"]
    yield "PTB 2x200 gate layer (ptb-h200-dkp-lstm25)", ptb, replace(PRESETS["default"], rows=16, cols=16)


def scalesim_cycles(shapes: list[tuple[int, int, int]], rows: int, cols: int) -> dict[str, list[int]]:
    """SCALE-Sim's compute cycles of each (M, N, K) GEMM on a rows x cols array, per dataflow."""
    with tempfile.TemporaryDirectory() as d:
        for df in DATAFLOWS:
            Path(d, f"{df}.cfg").write_text(CONFIG.format(rows=rows, cols=cols, df=df))
        Path(d, "topo.csv").write_text("Layer, M, N, K,\n" + "".join(f"g{i}, {m}, {n}, {k},\n"
                                                                   for i, (m, n, k) in enumerate(shapes)))
        Path(d, "layout.csv").write_text("Layer name,\n")
        r = subprocess.run([str(VENV_PY), "-c", RUNNER, d], capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    if not VENV_PY.exists():
        raise SystemExit(f"no SCALE-Sim venv at {VENV_PY.parent.parent}: run `make scalesim-venv` first")
    rows = []
    for name, layer, cfg in cases():
        gs = gemms(layer, cfg)
        got = scalesim_cycles([(g.rows, g.cols, g.k) for g in gs], cfg.rows, cfg.cols)
        for i, g in enumerate(gs):
            ours = g.cycles(cfg)
            rows.append({"layer": name, "order": layer.order, "gemm": f"G{i + 1}", "batch": cfg.batch,
                         "array": f"{cfg.rows}x{cfg.cols}", "M": g.rows, "N": g.cols, "K": g.k, "tiles": g.tiles,
                         "ours_os": ours, **{f"scalesim_{df}": got[df][i] for df in DATAFLOWS},
                         "ours_over_best": round(ours / min(got[df][i] for df in DATAFLOWS), 3)})
    print("| layer | GEMM | array | M × N, K | tiles | ours (OS, == RTL) | SCALE-Sim OS | WS | IS | ours / best |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layer']} ({r['order']}, B {r['batch']}) | {r['gemm']} | {r['array']} | {r['M']} × {r['N']}, "
              f"{r['K']} | {r['tiles']} | {r['ours_os']} | {r['scalesim_os']} | {r['scalesim_ws']} | "
              f"{r['scalesim_is']} | {r['ours_over_best']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": "python bench/scalesim_check.py", "scalesim": "3.0.0",
                                            "machine": platform.node(), "date": time.strftime("%Y-%m-%d"),
                                            "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
