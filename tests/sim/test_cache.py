"""The simulator build cache under concurrency and damage (issue 33): two runs on one fresh cache
build once and both pass; a truncated cached binary is rebuilt, never trusted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from doping.pack import write_pack
from doping.synth import synth_layer


def _sim(pack: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doping.cli", "sim", "--pack", str(pack), "--config", "minimal",
                             "--vectors", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_sims_on_a_fresh_cache_and_a_truncated_binary(tmp_path):
    pack = write_pack(tmp_path / "p.dpack", [synth_layer((48, 30), 6, seed=3)])
    env = {**os.environ, "DOPING_CACHE": str(tmp_path / "cache")}
    procs = [_sim(pack, env), _sim(pack, env)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("PASS" in o for o in outs)
    builds = [d for d in (tmp_path / "cache").iterdir() if d.is_dir()]
    assert len(builds) == 1  # one build, no leftover temporary folder
    binary = next(f for f in (builds[0] / "build").iterdir() if f.is_file() and os.access(f, os.X_OK)
                  and f.suffix == "")
    size = binary.stat().st_size
    with open(binary, "r+b") as f:
        f.truncate(size // 3)
    p = _sim(pack, env)
    out = p.communicate(timeout=900)[0]
    assert p.returncode == 0 and "PASS" in out, out
    assert binary.stat().st_size == size
