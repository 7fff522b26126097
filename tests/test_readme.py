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
