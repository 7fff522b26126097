"""Fuzz suite (issue 14): mutated packs (manifest fields and types, bytes, array headers and
sizes) and accelerator configs, read directly and through the CLI. Every input must either be
accepted or refused with one PackError/DopingError line: no other exception, no traceback, no
output file, bounded time. ``make test`` runs a small budget; ``make test-slow`` the long run
(``FUZZ_EXAMPLES`` sets it)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doping.cli import main
from doping.config import AccelConfig, load_config
from doping.errors import DopingError
from doping.pack import read_pack, write_pack

FAST = 40
SLOW = int(os.environ.get("FUZZ_EXAMPLES", "3000"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def valid_pack(tmp_path_factory):
    """Two gate layers and the integer LSTM over them (pack version 3: every section fuzzed)."""
    from doping.synth import synth_lstm

    d = tmp_path_factory.mktemp("fuzz")
    gates, cells = synth_lstm(4, 3, 2, 2, seed=1)
    return write_pack(d / "ok.dpack", gates, lstm=cells).read_bytes()


def _members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(members: dict[str, bytes], deflate=False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for n, data in members.items():
            z.writestr(n, data)
    return buf.getvalue()


def _paths(obj, prefix=()):
    """Every path into a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return obj


def _tree(root) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: (size, mtime in ns) by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st_ = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st_.st_size, st_.st_mtime_ns)
    return out


@contextlib.contextmanager
def writes_only(root, allowed=()):
    """Run the body in an empty folder under ``root`` and check that nothing under ``root`` but
    the ``allowed`` names changed: no stray file, no temporary left, no input touched."""
    work = root / "cwd"
    work.mkdir(exist_ok=True)
    before = _tree(root)
    old = os.getcwd()
    os.chdir(work)
    try:
        yield
    finally:
        os.chdir(old)
    after = _tree(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} - set(allowed)
    assert not changed, f"written outside the output: {sorted(changed)[:5]}"


def check_read(tmp_path, raw: bytes) -> None:
    """``read_pack`` and ``doping pack inspect`` on ``raw``: accepted, or one clear refusal, and
    nothing written but the output."""
    p = tmp_path / "fuzz.dpack"
    p.write_bytes(raw)
    t0 = time.time()
    try:
        read_pack(p)
        ok = True
    except DopingError:
        ok = False
    assert time.time() - t0 < 5
    out = tmp_path / "y.npy"
    x = tmp_path / "x.npy"
    if not x.exists():
        np.save(x, np.ones((2, 10), np.int8))
    err = io.StringIO()
    with writes_only(tmp_path, allowed={out.name}), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(["golden", str(p), "--input", str(x), "--output", str(out)])
        except SystemExit as e:
            rc = e.code
    text = err.getvalue()
    assert "Traceback" not in text
    if rc != 0:
        assert rc == 2 and len(text.strip().splitlines()) == 1, text
        assert not out.exists()
    else:
        assert ok  # the CLI accepted it, so the reader must have too
        out.unlink()


def _manifest_mutation(examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(data=st.data())
    def run(tmp_path, valid_pack, data):
        members = _members(valid_pack)
        manifest = json.loads(members["manifest.json"])
        paths = list(_paths(manifest))
        path = data.draw(st.sampled_from(paths))
        mutated = _set(manifest, path, data.draw(json_values))
        members["manifest.json"] = json.dumps(mutated, allow_nan=True).encode()
        check_read(tmp_path, _zip(members))
    return run


def _byte_mutation(examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(data=st.data())
    def run(tmp_path, valid_pack, data):
        raw = bytearray(valid_pack)
        kind = data.draw(st.sampled_from(["flip", "truncate", "array", "deflate"]))
        if kind == "flip":
            for _ in range(data.draw(st.integers(1, 8))):
                i = data.draw(st.integers(0, len(raw) - 1))
                raw[i] = data.draw(st.integers(0, 255))
            check_read(tmp_path, bytes(raw))
        elif kind == "truncate":
            check_read(tmp_path, bytes(raw[: data.draw(st.integers(0, len(raw) - 1))]))
        else:
            members = _members(valid_pack)
            name = data.draw(st.sampled_from([n for n in members if n.endswith(".npy")]))
            shape = tuple(data.draw(st.lists(st.integers(0, 2 ** 40), max_size=3)))
            dtype = data.draw(st.sampled_from(["<i8", "|i1", "<f4", "|O", "<i2", ">i8"]))
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
            body = data.draw(st.binary(max_size=64))
            members[name] = buf.getvalue() + body
            check_read(tmp_path, _zip(members, deflate=kind == "deflate"))
    return run


def _config_mutation(examples):
    names = [f for f in AccelConfig.__dataclass_fields__]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(fields=st.dictionaries(st.sampled_from(names + ["bogus"]), json_values, max_size=4),
           as_toml=st.booleans())
    def run(tmp_path, fields, as_toml):
        p = tmp_path / "c.json"
        p.write_text(json.dumps(fields, allow_nan=True))
        try:
            cfg = load_config(str(p))
        except DopingError:
            return
        assert all(isinstance(getattr(cfg, f), int) and getattr(cfg, f) > 0 for f in names
                   if f not in ("clock_mhz", "lstm_cell"))
        assert cfg.lstm_cell in (0, 1) and not isinstance(cfg.lstm_cell, bool)
    return run


def _run_folder_mutation(examples):
    """Run folders whose config.json holds mutated training options (issue 33): loading the run
    (what export and flow do first) accepts or refuses them with one DopingError, before any model
    is built from a size nobody checked."""
    from dataclasses import fields

    from doping.train import TrainConfig

    names = [f.name for f in fields(TrainConfig)]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(changes=st.dictionaries(st.sampled_from(names + ["bogus"]), json_values, max_size=4))
    def run(tiny_run, changes):
        from doping.train import load_run_model

        cfg = json.loads((tiny_run / "config.json.orig").read_text())
        cfg.update(changes)
        (tiny_run / "config.json").write_text(json.dumps(cfg, allow_nan=True))
        t0 = time.time()
        with writes_only(tiny_run.parent):
            try:
                load_run_model(tiny_run)
            except DopingError:
                pass
        assert time.time() - t0 < 30
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from doping.train import TrainConfig, train

    run = tmp_path_factory.mktemp("run") / "r"
    train(TrainConfig(data="tiny", hidden=8, epochs=1, max_batches=2), run, progress=False, log=lambda s: None)
    (run / "config.json.orig").write_text((run / "config.json").read_text())
    return run


test_fuzz_run_folders = _run_folder_mutation(FAST)
test_fuzz_run_folders_long = pytest.mark.slow(_run_folder_mutation(SLOW))
test_fuzz_manifest_fields = _manifest_mutation(FAST)
test_fuzz_pack_bytes_and_arrays = _byte_mutation(FAST)
test_fuzz_configs = _config_mutation(FAST)
test_fuzz_manifest_fields_long = pytest.mark.slow(_manifest_mutation(SLOW))
test_fuzz_pack_bytes_and_arrays_long = pytest.mark.slow(_byte_mutation(SLOW))
test_fuzz_configs_long = pytest.mark.slow(_config_mutation(SLOW))


def test_the_write_check_sees_a_stray_file_and_a_touched_input(tmp_path):
    (tmp_path / "input").write_text("x")
    with pytest.raises(AssertionError, match="stray"):
        with writes_only(tmp_path, allowed={"out"}):
            open("stray", "w").close()  # noqa: SIM115 - in the cwd the check provides
    (tmp_path / "cwd" / "stray").unlink()
    with pytest.raises(AssertionError, match="input"):
        with writes_only(tmp_path, allowed={"out"}):
            (tmp_path / "input").write_text("changed")
    with writes_only(tmp_path, allowed={"out"}):
        (tmp_path / "out").write_text("fine")
