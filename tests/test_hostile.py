"""Hostile and broken inputs (issue 14): each reproduction gives one line naming the problem,
exit status 2 and nothing written; nothing executes, hangs or allocates without bound."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from doping.cli import main
from doping.config import load_config
from doping.errors import DopingError, PackError
from doping.pack import read_pack, write_pack
from doping.synth import synth_layer
from tests.conftest import rewrite_pack


@pytest.fixture
def pack_path(tmp_path):
    return write_pack(tmp_path / "ok.dpack", [synth_layer((48, 30), 6, seed=7)])


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``doping ARGV`` in process: (exit status, stderr); argparse's own exits included."""
    try:
        rc = main(list(map(str, argv)))
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    return rc, err


def assert_one_line_error(rc, err, match=""):
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match.lower() in err.lower(), err


# --- code execution -----------------------------------------------------------------------------

class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_crafted_checkpoint_runs_no_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "dkp", "ratio": 4.0, "hidden": 16}))
    import torch

    torch.save({"model": _Exploit(), "vocab_size": 10}, run / "best.pt")
    rc, err = run_cli(capsys, "export", run, "--out", tmp_path / "x.dpack")
    assert_one_line_error(rc, err, "not a readable doping checkpoint")
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists() and not (tmp_path / "x.dpack").exists()
    rc, err = run_cli(capsys, "flow", "--checkpoint", run, "-o", tmp_path / "flow")
    assert_one_line_error(rc, err, "not a readable doping checkpoint")
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists() and not (tmp_path / "flow").exists()


@pytest.mark.parametrize("config", ['[1, 2]', '{"method": 3}', '{"hidden": 2.5}', '"x"', '{"hidden": true}'])
def test_corrupt_run_folder_is_one_line(tmp_path, capsys, config):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config)
    (run / "best.pt").write_bytes(b"not a checkpoint")
    rc, err = run_cli(capsys, "export", run, "--out", tmp_path / "x.dpack")
    assert_one_line_error(rc, err)
    assert not (tmp_path / "x.dpack").exists()


# --- injection ----------------------------------------------------------------------------------

def test_reports_escape_names(tmp_path):
    from doping.flow import write_report

    from doping.config import PRESETS
    from doping.flow_report import FlowReport, LayerRow, PerVector, Verification

    evil = "<script>alert(1)</script>|`x`"  # in a layer name and a pack path (a config's fields are checked)
    phases = {"RECV": 1, "G1": 2, "G2": 3, "SEND": 4}
    r = FlowReport(
        pack=f"/tmp/{evil}.dpack", config=PRESETS["minimal"], training=None,
        verification=Verification(passed=True, vectors=1, mismatches=0, cycle_model_matches_rtl=True,
                                   simulator="verilator"),
        compression={"param_ratio": 4.0, "bit_ratio": 3.0}, accuracy={},
        per_vector=PerVector(cycles=10, clock_mhz=500.0, latency_us=0.02, energy_nj=1.0, interval_cycles=10,
                             power_mw=1.0),
        sram_kib=1.0, area_mm2=0.1, silicon_basis="45 nm rules", dense_energy_nj=2.0, energy_saving_vs_dense=2.0,
        layers=(LayerRow(name=evil, shape=(4, 4), cycles=10, interval_cycles=10, phase_cycles=phases, energy_pj=1000.0,
                         energy_breakdown={"mac": 1.0}),),
        area_breakdown_mm2={"sram": 0.1}, sram_bits={"a": 8})
    write_report(tmp_path, r)
    html, md = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>" not in md and "|`x`" not in md


@pytest.mark.skipif(not __import__("shutil").which("yosys"), reason="needs Debian's yosys: make setup as root")
def test_synth_output_path_is_not_a_yosys_script(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = "syn out; exec -- touch PWNED; echo"
    tiny = tmp_path / "tiny.json"  # a small design: this is about the path, not the netlist
    tiny.write_text('{"rows": 1, "cols": 2, "lanes": 1, "max_m": 16, "max_n": 16, "max_factor": 16, '
                    '"max_intermediate": 16, "max_nnz": 64}')
    rc, err = run_cli(capsys, "synth", "--config", str(tiny), "-o", out)
    assert rc == 0, err
    assert not (tmp_path / "PWNED").exists() and (tmp_path / out / "cells.json").is_file()


# --- hangs and memory ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv,match", [
    (["--y-stall", "1.0"], "probability in [0, 1)"), (["--x-gap", "-0.5"], "probability in [0, 1)"),
    (["--vectors", "0"], "positive integer"), (["--vectors", "-2"], "positive integer"),
    (["--seed", "-1"], "0..2^32-1"), (["--y-stall", "nan"], "finite"),
    (["--config", str(Path(__file__).parent.parent / "configs" / "ptb-h200-lstm.toml")], "give --tokens"),
])
def test_sim_arguments_that_would_hang_or_lie(pack_path, capsys, argv, match):
    t0 = time.time()
    rc, err = run_cli(capsys, "sim", "--pack", pack_path, *argv)
    assert_one_line_error(rc, err, match)
    assert time.time() - t0 < 5


def test_sim_watchdog_is_finite_and_above_the_cycle_model():
    from doping.config import PRESETS
    from doping.estimate.cycles import schedule
    from doping.sim.tb_accel import watchdog_cycles

    layer, cfg = synth_layer((48, 30), 6, seed=7), PRESETS["minimal"]
    from doping.sim.job import MatvecJob

    calm = watchdog_cycles(layer, cfg, 3, MatvecJob(config={}, packs=[], vectors=3))
    assert calm > 3 * schedule(layer, cfg).cycles
    slack = 10_000
    stalled = watchdog_cycles(layer, cfg, 3, MatvecJob(config={}, packs=[], vectors=3, y_stall=0.9))
    assert stalled - slack >= 9 * (calm - slack) > 0


def _npy_header(shape, dtype="<i8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_array_header_claiming_a_terabyte_is_refused_unread(tmp_path, pack_path):
    bad = tmp_path / "huge.dpack"
    with zipfile.ZipFile(pack_path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("cols.npy"):
                data = _npy_header((10 ** 12,))
            zout.writestr(name, data)
    t0 = time.time()
    with pytest.raises(PackError, match="has shape"):
        read_pack(bad)
    assert time.time() - t0 < 2


def test_deflate_bomb_is_refused_before_inflating(tmp_path, pack_path):
    bad = tmp_path / "bomb.dpack"
    with zipfile.ZipFile(pack_path) as zin, zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("vals.npy"):
                data = data + b"\0" * (200 << 20)  # 200 MB of zeros deflate to ~200 KB
            zout.writestr(name, data)
    assert bad.stat().st_size < 2 << 20
    with pytest.raises(PackError, match="declares"):
        read_pack(bad)


def test_manifest_with_huge_declared_shapes_is_refused(tmp_path, pack_path):
    bad = rewrite_pack(pack_path, tmp_path / "b.dpack",
                       manifest=lambda m: m["layers"][0]["overlay"].update(nnz=10 ** 12))
    with pytest.raises(PackError, match="outside"):
        read_pack(bad)


def test_pack_synth_refuses_before_allocating(tmp_path, capsys):
    rc, err = run_cli(capsys, "pack", "synth", "--shape", "100000x100000", "--ratio", "25", "-o", tmp_path / "x")
    assert_one_line_error(rc, err, "nothing was allocated")
    assert not (tmp_path / "x").exists()


# --- tracebacks instead of one line -------------------------------------------------------------

MANIFEST_EDITS = {
    "Infinity multiplier": lambda m: m["layers"][0]["quant"]["output_requant"].update(multiplier=float("inf")),
    "fractional multiplier": lambda m: m["layers"][0]["quant"]["output_requant"].update(multiplier=32256.9),
    "Infinity in shape": lambda m: m["layers"][0].update(shape=[float("inf"), 30]),
    "scalar factor": lambda m: m["layers"][0]["factors"].update(a=4),
    "boolean shape": lambda m: m["layers"][0].update(shape=[True, 30]),
    "NaN scale": lambda m: m["layers"][0]["quant"].update(x_scale=float("nan")),
    "string nnz": lambda m: m["layers"][0]["overlay"].update(nnz="7"),
    "layers not a list": lambda m: m.update(layers={"a": 1}),
    "layer not an object": lambda m: m.update(layers=[3]),
    "arrays not an object": lambda m: m["layers"][0].update(arrays=[1]),
    "meta not an object": lambda m: m["layers"][0].update(meta=[1]),
    "duplicate layer names": lambda m: m.update(layers=m["layers"] * 2),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_malformed_manifest_fields_are_one_line(tmp_path, pack_path, capsys, case):
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", manifest=MANIFEST_EDITS[case])
    rc, err = run_cli(capsys, "pack", "inspect", bad)
    assert_one_line_error(rc, err, "bad.dpack")


def test_deeply_nested_manifest(tmp_path, pack_path, capsys):
    bad = tmp_path / "deep.dpack"
    with zipfile.ZipFile(pack_path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, b"[" * 100_000 + b"]" * 100_000 if name == "manifest.json" else zin.read(name))
    rc, err = run_cli(capsys, "pack", "inspect", bad)
    assert_one_line_error(rc, err, "nested too deeply")


@pytest.mark.parametrize("text,match", [
    ("[1, 2]", "must be an object"), ("3", "must be an object"), ("null", "must be an object"),
    ('{"clock_mhz": 1e400}', "finite"), ('{"clock_mhz": NaN}', "not valid"), ('{"rows": 2.5}', "integer"),
    ('{"rows": true}', "integer"), ('{"max_m": 99999999999}', "integer in 1.."), ("{", "not valid"),
])
def test_config_files_that_used_to_crash(tmp_path, capsys, text, match):
    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(DopingError, match=match):
        load_config(str(f))
    rc, err = run_cli(capsys, "rtl", "--config", f, "-o", tmp_path / "rtl")
    assert_one_line_error(rc, err, match)
    assert not (tmp_path / "rtl").exists()


def test_output_paths_that_are_not_files(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    for out, match in ((tmp_path / "dir", "is a folder"), ("", "empty"), ("/dev/null", "not a regular file")):
        rc, err = run_cli(capsys, "pack", "synth", "--shape", "20x20", "--ratio", "4", "-o", out)
        assert_one_line_error(rc, err, match)
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("errno_,text", [(28, "No space left on device"), (13, "Permission denied"),
                                         (30, "Read-only file system")])
def test_disk_full_or_read_only_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, errno_, text):
    """The OS refusing a write (as a full disk or read-only folder does, even for root) at the moment
    the output would land."""
    def refuse(src, dst):
        raise OSError(errno_, text, str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    rc, err = run_cli(capsys, "pack", "synth", "--shape", "20x20", "--ratio", "4", "-o", tmp_path / "p.dpack")
    assert_one_line_error(rc, err, text)
    assert list(tmp_path.iterdir()) == []


def test_golden_refuses_an_empty_batch(tmp_path, pack_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((0, 30), np.int8))
    rc, err = run_cli(capsys, "golden", pack_path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_one_line_error(rc, err, "empty batch")
    assert not (tmp_path / "y.npy").exists()


def test_golden_input_header_larger_than_the_file(tmp_path, pack_path, capsys):
    (tmp_path / "x.npy").write_bytes(_npy_header((10 ** 9, 30), "|i1"))
    rc, err = run_cli(capsys, "golden", pack_path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_one_line_error(rc, err, "does not match")


def test_truncated_stage_record_is_rerun(tmp_path):
    from doping.flow import Stages

    st = Stages(tmp_path, log=lambda *_: None)
    (tmp_path / "o").write_text("x")
    assert st.run("s", "f1", [tmp_path / "o"], lambda: {"v": 1}) == {"v": 1}
    (tmp_path / ".stages" / "s.json").write_text('{"fingerp')
    assert st.run("s", "f1", [tmp_path / "o"], lambda: {"v": 2}) == {"v": 2}
    assert st.run("s", "f1", [tmp_path / "o"], lambda: {"v": 3}) == {"v": 2}


def test_flow_with_a_bad_pack_creates_nothing(tmp_path, capsys):
    (tmp_path / "bad.dpack").write_bytes(b"PK garbage")
    rc, err = run_cli(capsys, "flow", "--pack", tmp_path / "bad.dpack", "-o", tmp_path / "out")
    assert_one_line_error(rc, err, "not a doping model pack")
    assert not (tmp_path / "out").exists()


# --- leftovers ----------------------------------------------------------------------------------

def test_sigterm_during_a_pack_write_leaves_nothing(tmp_path):
    out = tmp_path / "big.dpack"
    proc = subprocess.Popen([sys.executable, "-m", "doping.cli", "pack", "synth", "--shape", "2600x1300",
                             "--ratio", "1.5", "-o", str(out)], stderr=subprocess.PIPE, text=True)
    deadline, writing = time.time() + 120, False
    while time.time() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".big.dpack.*.tmp")):  # the atomic write is under way: stop it now
            proc.send_signal(signal.SIGTERM)
            writing = True
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    if writing and proc.returncode == 143:
        assert not out.exists() and err.strip() == "doping: terminated"
    else:  # it finished before the signal landed
        assert proc.returncode == 0 and out.is_file(), err


def test_a_signal_inside_signals_held_lands_when_the_block_ends():
    """What write_pack relies on: a SIGTERM raised while a zip archive is being written surfaces
    once the archive is closed, not inside zipfile (whose clean-up would then fail)."""
    import os

    from doping.fileio import deferred, signals_held

    class Stop(Exception):
        pass

    def raise_stop(signum, frame):  # what cli.main's handlers do
        if not deferred(signum):
            raise Stop

    previous = signal.signal(signal.SIGTERM, raise_stop)
    steps = []
    try:
        with pytest.raises(Stop):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("after the kill")
        assert steps == ["after the kill"]
        with pytest.raises(Stop):  # outside the block: at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_stopping_doping_stops_its_children():
    """What SIGTERM/SIGINT do in ``main``: every descendant (a build's make and compilers) gets
    SIGTERM, grandchildren included."""
    code = ("import subprocess, sys; from doping.cli import kill_descendants; "
            "p = subprocess.Popen(['sh', '-c', 'sleep 60 & wait']); import time; time.sleep(0.5); "
            "kill_descendants(); print(p.wait())")
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "-15" and time.time() - t0 < 20, out.stderr


# --- wrong numbers ------------------------------------------------------------------------------

def test_flow_config_for_a_small_layer_is_not_inflated():
    from doping.estimate.baselines import fit_config
    from doping.flow import FLOW_BASE

    layer = synth_layer((128, 64), 4)
    cfg = fit_config(FLOW_BASE, layer)
    cfg.check(layer)
    (m1, n1), (m2, n2) = layer.factor_shapes
    inter = m1 * n2 if layer.order == "AX" else n1 * m2
    assert cfg.max_intermediate <= 4 * max(inter, 64) and cfg.max_intermediate < 65536
    assert cfg.max_n == 64 and cfg.max_nnz <= 4 * (layer.nnz + layer.m)


# Round 3 (issue 33): non-regular input paths, training options and run folders checked first.

@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_non_regular_input_paths_are_refused_unread(tmp_path, capsys, kind):
    if kind == "fifo":
        path = tmp_path / "p.dpack"
        os.mkfifo(path)  # opening it for reading would block forever
    else:
        path = Path("/dev/zero") if kind == "device" else tmp_path
    t0 = time.time()
    rc, err = run_cli(capsys, "pack", "inspect", path)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and time.time() - t0 < 10
    assert "regular file" in err or "directory" in err or "folder" in err


@pytest.mark.parametrize("argv, match", [
    (["--lr", "-1"], "must be > 0"), (["--clip", "-1"], "must be > 0"), (["--threads", "-2"], "--threads must be >= 0"),
    (["--max-batches", "-1"], "--max-batches must be >= 0"), (["--seed", str(2 ** 64)], "--seed must be <="),
    (["--anneal-start", "0.8", "--anneal-end", "0.5"], "anneal-start"), (["--hidden", "30000"], "--hidden must be <="),
    (["--lr-decay", "-1"], "--lr-decay"), (["--curve-every", "-1"], "--curve-every must be >= 0"),
    (["--kp-warmup", "0.2"], "--kp-warmup"),
])
def test_training_options_are_checked_before_anything_is_built(tmp_path, capsys, argv, match):
    out = tmp_path / "run"
    rc, err = run_cli(capsys, "train", "--data", "tiny", *argv, "-o", out)
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_run_folder_claiming_a_huge_model_is_refused_before_allocation(tmp_path, capsys):
    from doping.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(data="tiny", hidden=16, epochs=1, max_batches=2), run, progress=False, log=lambda s: None)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "hidden": 20000}))
    rc, err = run_cli(capsys, "export", run, "--out", tmp_path / "x.dpack")
    assert rc == 2 and "--hidden must be <= 4096" in err and not (tmp_path / "x.dpack").exists()


@pytest.mark.parametrize("run", ["../../x", "/abs/run", "a/../../b", "h200/dense\n"])
def test_results_row_cannot_name_a_pack_outside_packs(tmp_path, run):
    from doping.estimate.compare import run_pack

    with pytest.raises(DopingError, match="not a relative run name"):
        run_pack({"run": run, "method": "dkp"}, tmp_path / "packs", tmp_path / "runs")
    assert not any(tmp_path.rglob("*.dpack"))


def test_flow_write_probe_does_not_follow_a_planted_link(tmp_path, pack_path):
    from doping.flow import _check_inputs

    out, target = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    target.write_text("keep me")
    (out / ".write-test").symlink_to(target)
    _check_inputs(out, None, str(pack_path), None, None)  # validates, then probes that OUT is writable
    assert target.read_text() == "keep me" and (out / ".write-test").is_symlink()


@pytest.mark.parametrize("name, match", [("\udcff", "lone surrogate"), ("", "non-empty"), ("a\x1bb", "control")])
def test_layer_names_that_would_break_reports_are_refused_at_write(tmp_path, name, match):
    from dataclasses import replace

    layer = replace(synth_layer((16, 12), 3, seed=1), name=name)
    with pytest.raises(PackError, match=match):
        write_pack(tmp_path / "n.dpack", [layer])
    assert not (tmp_path / "n.dpack").exists()


def test_boolean_version_is_not_a_version(tmp_path, pack_path):
    bad = tmp_path / "v.dpack"
    rewrite_pack(pack_path, bad, lambda m: m.update(version=True))
    with pytest.raises(PackError, match="unsupported pack version True"):
        read_pack(bad)


def test_duplicate_members_and_member_floods_are_refused(tmp_path, pack_path):
    import warnings

    dup = tmp_path / "dup.dpack"
    with zipfile.ZipFile(pack_path) as zin, zipfile.ZipFile(dup, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
        zout.writestr("manifest.json", zin.read("manifest.json"))
    with pytest.raises(PackError, match="more than once"):
        read_pack(dup)
    flood = tmp_path / "flood.dpack"
    with zipfile.ZipFile(flood, "w") as z:
        for i in range(10_001):
            z.writestr(f"m{i}", b"")
    with pytest.raises(PackError, match="declares 10001 members"):
        read_pack(flood)


def test_resume_from_a_checkpoint_of_another_model_is_one_line(tmp_path):
    from doping.train import TrainConfig, train

    a, b = tmp_path / "a", tmp_path / "b"
    train(TrainConfig(data="tiny", hidden=16, epochs=1, max_batches=2), a, progress=False, log=lambda s: None)
    train(TrainConfig(data="tiny", hidden=24, epochs=1, max_batches=2), b, progress=False, log=lambda s: None)
    (a / "checkpoint.pt").write_bytes((b / "checkpoint.pt").read_bytes())
    with pytest.raises(DopingError, match="not a checkpoint of this run's model"):
        train(TrainConfig(data="tiny", hidden=16, epochs=2, max_batches=2), a, resume=True, progress=False,
              log=lambda s: None)


def test_vectors_are_bounded(capsys):
    rc, err = run_cli(capsys, "sim", "--pack", "x.dpack", "--vectors", "100000000")
    assert rc == 2 and "at most 100000 vectors" in err


def test_plot_labels_are_plain_text(tmp_path):
    from doping.plotting import plain, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.set_yscale("log")  # its tick labels are mathtext and must stay so
    ax.plot([1, 2], [1, 10], label=plain(r"$\frac{1}{$ layer"))
    ax.legend()
    fig.savefig(tmp_path / "p.png")  # mathtext would raise ValueError here
    plt.close(fig)
    assert (tmp_path / "p.png").stat().st_size > 0


def test_configs_the_generator_cannot_build_are_refused_up_front(tmp_path, capsys):
    """issue 33: a legal config whose memories the Verilog generator would take minutes and GBs
    to build (here 33.6 M words) is refused at once, for every command that generates RTL, with
    nothing written; estimating it still works."""
    big = tmp_path / "big.json"
    big.write_text('{"max_nnz": 16777216}')
    pack = tmp_path / "p.dpack"
    from doping.pack import write_pack
    from doping.synth import synth_layer

    write_pack(pack, [synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))])
    for argv in (["rtl", "--config", str(big), "-o", str(tmp_path / "rtl")],
                 ["synth", "--config", str(big), "-o", str(tmp_path / "syn")],
                 ["sim", "--config", str(big), "--pack", str(pack)],
                 ["flow", "--pack", str(pack), "--config", str(big), "-o", str(tmp_path / "flow")]):
        t0 = time.time()
        rc, err = run_cli(capsys, *argv)
        assert_one_line_error(rc, err, "cannot be generated: its memories hold 33,603,584 words")
        assert time.time() - t0 < 10
    assert not any((tmp_path / d).exists() for d in ("rtl", "syn", "flow"))
    rc, _ = run_cli(capsys, "estimate", str(pack), "--config", str(big))
    assert rc == 0


def test_rtl_under_an_address_space_limit_is_one_line(tmp_path):
    """Amaranth's built-in yosys reserves ~4.1 GB of address space: under a 3.5 GB ulimit -v,
    `doping rtl` says so in one line, exit 2, and leaves no folder (was a WasmtimeError traceback)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3_500_000_000, 3_500_000_000))

    out = tmp_path / "rtl"
    r = subprocess.run([sys.executable, "-m", "doping.cli", "rtl", "--config", "minimal", "-o", str(out)],
                       capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "address space" in r.stderr, r.stderr[-800:]
    assert not out.exists()


def test_a_killed_writers_temporary_files_are_swept(tmp_path):
    """SIGKILL skips atomic_path's cleanup: the next write of the same file removes that file's
    temporaries once an hour old (not fresh ones: a concurrent writer's; not links)."""
    from doping.fileio import STALE_TEMP_SECONDS, atomic_path

    old, fresh = tmp_path / ".out.json.abc123.tmp", tmp_path / ".out.json.def456.tmp"
    other, link = tmp_path / ".other.json.x.tmp", tmp_path / ".out.json.lnk.tmp"
    for f in (old, fresh, other):
        f.write_text("partial")
    link.symlink_to(other)
    t = time.time() - STALE_TEMP_SECONDS - 10
    for f in (old, other):
        os.utime(f, (t, t))
    os.utime(link, (t, t), follow_symlinks=False)
    with atomic_path(tmp_path / "out.json") as p:
        p.write_text("{}")
    assert not old.exists() and fresh.exists() and other.exists() and link.is_symlink()
    assert (tmp_path / "out.json").read_text() == "{}"


def test_synth_with_an_unknown_library_writes_nothing(tmp_path, capsys):
    out = tmp_path / "synth"
    rc, err = run_cli(capsys, "synth", "--config", "minimal", "--liberty", "nope", "-o", str(out))
    assert rc == 2 and "neither a known library" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_flow_killed_mid_run_then_rerun_completes(tmp_path):
    """SIGKILL (no cleanup at all) once the flow has finished a stage, then the same command: it
    completes, reuses the finished stage and verifies; nothing half written is taken for done."""
    pack = write_pack(tmp_path / "p.dpack", [synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))])
    out = tmp_path / "flow"
    cmd = [sys.executable, "-m", "doping.cli", "flow", "--pack", str(pack), "--config", "minimal", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (out / ".stages" / "rtl.json").is_file():
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)  # with everything it started (a simulator build)
    proc.wait(timeout=60)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["verification"]["passed"] and report["verification"]["cycle_model_matches_rtl"]
    assert killed, "the flow finished before a stage was recorded: nothing was tested"
    assert "[rtl] unchanged, reused" in r.stdout + r.stderr
