"""Atomic file output: a command that fails leaves nothing half written."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import stat
import tempfile
import time
from pathlib import Path

from doping.errors import DopingError


#: The largest input file any reader accepts (packs, checkpoints, corpora, configs), bytes.
MAX_INPUT_BYTES = 4 << 30


def check_input_file(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """An input must be an existing regular file (a symlink to one is fine) of at most
    ``max_bytes``: never a device, a FIFO or a folder, so that no reader blocks or grows without
    bound."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        raise DopingError(f"{what} {p} does not exist") from None
    import stat as stat_mod

    if stat_mod.S_ISDIR(st.st_mode):
        raise DopingError(f"{what} {p} is a folder, expected a file")
    if not stat_mod.S_ISREG(st.st_mode):
        raise DopingError(f"{what} {p} is not a regular file (a device, pipe or socket); refusing to read it")
    if st.st_size > max_bytes:
        raise DopingError(f"{what} {p} is {st.st_size} bytes, more than the {max_bytes} allowed")
    return p


def check_output_file(path) -> None:
    """An output file may be new or an existing regular file; never a folder, a device or a pipe."""
    if not str(path).strip():
        raise DopingError("the output path is empty")
    p = Path(path)
    if p.is_symlink() or p.exists():
        if p.is_dir():
            raise DopingError(f"output {p} is a folder; give a file path")
        if not p.is_file():
            raise DopingError(f"output {p} exists and is not a regular file; refusing to replace it")


def check_output_dir(path) -> Path:
    """An output folder may be new or an existing folder."""
    if not str(path).strip():
        raise DopingError("the output folder path is empty")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DopingError(f"output {p} exists and is not a folder")
    return p


#: A temporary file of ``atomic_path`` this old is a killed writer's (SIGKILL skips the cleanup).
STALE_TEMP_SECONDS = 3600


def _sweep_stale_temps(parent: Path, name: str) -> None:
    """Remove ``atomic_path``'s temporary files for ``name`` in ``parent`` older than an hour:
    regular files only, never followed through a link."""
    now = time.time()
    for f in parent.glob(f".{glob.escape(name)}.*.tmp"):
        with contextlib.suppress(OSError):
            st = f.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_TEMP_SECONDS:
                f.unlink()


_held = {"depth": 0, "pending": None}  # signals_held's nesting and the signal it is holding


@contextlib.contextmanager
def signals_held():
    """SIGTERM and SIGINT held back inside the block and delivered when it ends: for steps that must
    not stop half way (binding a temporary's name; closing a zip archive whose member is open —
    interrupted there, zipfile's own clean-up fails with a second exception). It works through the
    handlers that raise (``cli.main`` installs them): they ask ``deferred(signum)`` first. Not an
    OS signal mask: with other threads running (torch's, a test runner's), the kernel may hand the
    signal to a thread that does not block it, and Python still runs the handler at once."""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        pending = _held["pending"] if _held["depth"] == 0 else None
        if pending is not None:
            _held["pending"] = None
            signal.raise_signal(pending)


def deferred(signum: int) -> bool:
    """For a signal handler: inside ``signals_held``, keep ``signum`` for the block's end and say
    True (the handler then returns); elsewhere False."""
    if _held["depth"]:
        _held["pending"] = signum
        return True
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    check_output_file(path)
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_temps(parent, path.name)
    except OSError as e:
        raise DopingError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = None
    try:
        # a signal between creating the file and knowing its name would leave it behind
        with signals_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
            except OSError as e:
                raise DopingError(f"cannot write {path}: {e.strerror or e}") from None
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def read_npy_header(f, max_header_size: int = 4096):
    """(shape, fortran_order, dtype) of the .npy stream ``f``, read without touching its body."""
    import numpy as np

    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f, max_header_size=max_header_size)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(f, max_header_size=max_header_size)
    raise ValueError(f"unsupported .npy version {version}")
