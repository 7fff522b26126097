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


def _fake_build(root: Path, name: str, mb: float, used: float) -> Path:
    d = root / name
    (d / "build").mkdir(parents=True)
    (d / "build" / "sim").write_bytes(b"\0" * int(mb * 2**20))
    (d / "built.ok").write_text("{}")
    os.utime(d / "built.ok", (used, used))
    return d


def test_eviction_is_least_recently_used_and_spares_the_current_and_locked_builds(tmp_path):
    """issue 32: the cache stays under its cap, oldest use first; the build just made and a build
    whose lock a builder holds are never removed; a killed builder's .tmp folder goes once stale."""
    import fcntl

    from doping.sim import cache

    old, mid, new, cur = (_fake_build(tmp_path, f"verilator-{n}", 1.0, t)
                          for n, t in (("old", 1000), ("mid", 2000), ("new", 3000), ("cur", 500)))
    with open(tmp_path / "verilator-mid.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a builder of "mid" is at work
        removed = cache.evict(tmp_path, int(2.5 * 2**20), keep=cur)
    assert removed == [old, new] and mid.is_dir() and cur.is_dir()  # "mid" locked: the next oldest goes
    assert [b.path for b in cache.builds(tmp_path)] == [cur, mid]
    assert cache.evict(tmp_path, 0) == []  # no cap
    stale = tmp_path / ".verilator-x.999999999.tmp"  # no such process
    stale.mkdir()
    live = tmp_path / f".verilator-y.{os.getpid()}.tmp"
    live.mkdir()
    import time

    assert cache.sweep_stale(tmp_path, now=time.time() + 2 * cache.STALE_TMP_SECONDS) == [stale]
    assert live.is_dir() and not stale.exists()


def test_cache_info_and_clean_from_the_cli(tmp_path, capsys, monkeypatch):
    from doping.cli import main

    monkeypatch.setenv("DOPING_CACHE", str(tmp_path))
    for n, t in (("a", 1000), ("b", 2000), ("c", 3000)):
        _fake_build(tmp_path, f"icarus-{n}", 0.9, t)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "3 builds, 3 MB" in out and out.index("icarus-c") < out.index("icarus-a")  # most recent first
    assert main(["cache", "clean", "--max-mb", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["icarus-b", "icarus-c"]
    assert main(["cache", "clean"]) == 0 and "removed 2 builds" in capsys.readouterr().out
    monkeypatch.setenv("DOPING_CACHE_MAX_MB", "lots")
    assert main(["cache", "info"]) == 2
