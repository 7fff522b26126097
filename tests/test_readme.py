"""The README's Python snippet runs verbatim (issue 32), on a synthetic pack where it reads
build/dkp25.dpack: golden model, fitted config, estimate, pricing path, Verilog, Verilator run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
