"""The simulator-build cache (``runner.cache_root()``): what it holds, least-recently-used eviction
to a size cap, and the sweep of folders that killed builds left behind.

A build is a folder ``<simulator>-<key>`` with a ``built.ok`` record (its mtime is the build's last
use: ``runner.build`` touches it on every hit) and a ``<folder>.lock`` beside it that a builder
holds while compiling. Eviction takes that lock without waiting, so a build being compiled is
never removed; a simulator already running from a removed build keeps its open files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

#: Default cap of the cache (``$DOPING_CACHE_MAX_MB`` overrides; 0: no cap). One Verilator build of
#: the default design is 80-160 MB, so this keeps several dozen — more than `make test` builds.
DEFAULT_MAX_MB = 8192
#: A ``.<build>.<pid>.tmp`` folder older than this, whose builder no longer runs, is a killed build.
STALE_TMP_SECONDS = 3600


@dataclass(frozen=True)
class Build:
    path: Path
    bytes: int
    last_used: float  # seconds since the epoch


def max_bytes() -> int:
    """The cap in bytes (``$DOPING_CACHE_MAX_MB``, else ``DEFAULT_MAX_MB``; 0: no cap)."""
    from doping.errors import DopingError

    text = os.environ.get("DOPING_CACHE_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        mb = int(text)
        if mb < 0:
            raise ValueError
    except ValueError:
        raise DopingError(f"DOPING_CACHE_MAX_MB must be a whole number of megabytes >= 0, got {text!r}") from None
    return mb << 20


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def builds(root: Path) -> list[Build]:
    """The finished builds in ``root``, least recently used first."""
    out = []
    if not root.is_dir():
        return out
    for d in root.iterdir():
        ok = d / "built.ok"
        if d.is_dir() and not d.name.startswith(".") and ok.is_file():
            out.append(Build(d, _size(d), ok.stat().st_mtime))
    return sorted(out, key=lambda b: b.last_used)


def touch(build_dir: Path) -> None:
    """Mark a build used now (its ``built.ok`` mtime)."""
    try:
        os.utime(build_dir / "built.ok")
    except OSError:
        pass  # a read-only cache still serves builds


def remove_build(d: Path) -> bool:
    """Remove build ``d`` unless a builder holds its lock; whether it was removed."""
    try:
        with open(d.parent / f"{d.name}.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            shutil.rmtree(d, ignore_errors=True)
        (d.parent / f"{d.name}.lock").unlink(missing_ok=True)
        return True
    except OSError:
        return False


def sweep_stale(root: Path, now: float | None = None) -> list[Path]:
    """Remove ``.<build>.<pid>.tmp`` folders of builders that no longer run and are older than
    ``STALE_TMP_SECONDS`` (what a killed build leaves); returns them."""
    now = time.time() if now is None else now
    removed = []
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        if not (d.is_dir() and d.name.startswith(".") and d.name.endswith(".tmp")):
            continue
        try:
            pid = int(d.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
            alive = True
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True  # another user's process
        if not alive and now - d.stat().st_mtime > STALE_TMP_SECONDS:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def evict(root: Path, cap: int, keep: Path | None = None) -> list[Path]:
    """Remove least-recently-used builds (never ``keep``, never one being built) until the cache
    holds at most ``cap`` bytes; returns what was removed. ``cap`` 0: nothing is removed."""
    if cap <= 0:
        return []
    all_builds = builds(root)
    total = sum(b.bytes for b in all_builds)
    removed = []
    for b in all_builds:
        if total <= cap:
            break
        if keep is not None and b.path.resolve() == keep.resolve():
            continue
        if remove_build(b.path):
            total -= b.bytes
            removed.append(b.path)
    return removed
