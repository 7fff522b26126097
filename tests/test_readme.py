"""The README runs verbatim (issue 32): its Python snippet on a synthetic pack where it reads
build/dkp25.dpack, and every command of its tour, in order, at a small budget."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from doping.data import TINY
from doping.pack import write_pack
from doping.synth import synth_layer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippet_runs_verbatim(tmp_path):
    code = re.search(r"## From Python.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "build").mkdir()
    write_pack(tmp_path / "build" / "dkp25.dpack", [synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))])
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.split()
    assert lines[-1] == "0"  # mismatches of the Verilator run against the golden model
    assert (tmp_path / "build" / "rtl" / "doping_accel.v").is_file()


def tour_commands() -> list[list[str]]:
    """Every ``doping`` command of the README's tour, continuation lines joined, comments cut."""
    import shlex

    block = re.search(r"## Tour\n```sh\n(.*?)```", README.read_text(), re.S).group(1)
    cmds = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv and argv[0] == "doping":
            cmds.append(argv[1:])
    return cmds


def test_readme_tour_commands_parse():
    """Every tour command is accepted by the CLI as written (options, values, choices): the tour's
    flags cannot drift from the parser unnoticed. (Running them needs PTB and hours of training:
    the commands after training are run by the demo and flow tests.)"""
    from doping.cli import build_parser

    cmds = tour_commands()
    assert len(cmds) >= 19 and {c[0] for c in cmds} >= {"train", "export", "rtl", "sim", "estimate", "dse", "flow"}
    parser = build_parser()
    for argv in cmds:
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            raise AssertionError(f"README tour: `doping {' '.join(argv)}` is refused by the CLI") from e


# What the tour test adds to each command so that the whole tour fits in `make test`: the shipped
# corpus instead of the download (CI has no network), one epoch of a 32-unit LSTM, fewer
# calibration vectors, and a flow that checks 4 vectors per layer and 4 tokens. Nothing else changes.
TOUR_BUDGET = {"train": ["--epochs", "1", "--hidden", "32", "--no-progress"], "export": ["--calib-vectors", "256"],
               "flow": ["--vectors", "4", "--tokens", "4"]}


def test_readme_tour_runs_in_order_at_a_small_budget(tmp_path):
    """Every tour command, in the README's order, in one folder, each exiting 0 with what it
    promises; the `synth --liberty sky130` line's report is checked as a user would check it
    (keys, slack signs at two clocks on its netlist, the path named, area near the estimator)."""
    from dataclasses import replace

    from doping.config import PRESETS
    from doping.estimate.model import area_mm2
    from doping.ppa.stdcell import timing

    ran = []
    for argv in tour_commands():
        if argv[:2] == ["data", "download"]:
            shutil.copytree(TINY, tmp_path / argv[2], ignore=shutil.ignore_patterns("SOURCE.md"))
            ran.append("data")
            continue
        cmd = [sys.executable, "-m", "doping.cli", *argv, *TOUR_BUDGET.get(argv[0], [])]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"README tour: `doping {' '.join(argv)}` failed: {r.stderr[-1500:]}"
        ran.append(argv[0])
        if argv[0] == "synth" and "--liberty" in argv:
            rep = json.loads(r.stdout)
            assert {"liberty", "clock_ns", "worst_slack_ns", "fmax_mhz", "critical_path", "cell_area_um2",
                    "sram_area_um2", "area_mm2", "power_mw"} <= set(rep)
            assert rep["liberty"] == "sky130" and rep["clock_ns"] == 10.0
            assert rep["corner"].startswith("sky130_fd_sc_hd tt")
            period = rep["clock_ns"] - rep["worst_slack_ns"]
            netlist = tmp_path / "build" / "synth" / "stdcell_sky130"
            assert timing(netlist, "doping_accel", period * 1.2)[0] > 0
            assert timing(netlist, "doping_accel", period * 0.8)[0] < 0
            end = rep["critical_path"]["end_register"]
            assert "[" in end and not end.startswith("_")  # an RTL register, not an abc net
            est = sum(area_mm2(replace(PRESETS["minimal"], tech_nm=130)).values())
            assert abs(est / rep["area_mm2"] - 1) < 0.10
    assert ran.count("train") == 2 and {"export", "rtl", "synth", "sim", "estimate", "sweep", "compare", "dse",
                                        "flow"} <= set(ran)
    for made in ("runs/dkp25/final.json", "build/dkp25.dpack", "p.dpack", "lstm.dpack", "build/rtl/doping_accel.v",
                 "build/synth/cells.json", "build/sweep/sweep.csv", "build/compare/compare.json",
                 "build/flow/report.md", "build/flow/report.html"):
        assert (tmp_path / made).is_file(), made
    cmp = json.loads((tmp_path / "build" / "compare" / "compare.json").read_text())
    assert cmp["reference"]["run"] == "dkp25" and cmp["hidden"] == 32
    flow = json.loads((tmp_path / "build" / "flow" / "report.json").read_text())
    assert flow["verification"]["passed"] and flow["verification"]["mismatches"] == 0


def test_readme_numbers_are_the_docs_numbers():
    """The README's generated blocks (the PTB table, the flagship's clock and area) are what
    bench/readme_numbers.py makes from docs/*.json now: a result cannot change without them."""
    r = subprocess.run([sys.executable, str(README.parent / "bench" / "readme_numbers.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = README.read_text()
    assert text.count("<!-- generated: ") == text.count("<!-- /generated -->") >= 2
