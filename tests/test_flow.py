"""`doping flow` end to end on the shipped corpus, its report, stage reuse, and first-run errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from doping.cli import main
from doping.flow import flow


@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    logs = []
    report = flow(out, vectors=10, log=logs.append)
    return out, report, logs


def test_flow_verifies_and_reports(flow_dir):
    out, report, _ = flow_dir
    r = json.loads((out / "report.json").read_text())  # what report.json holds is the typed report's to_json
    assert r == json.loads(json.dumps(report.to_json(), default=str))
    assert report.passed and report.verification.per_layer[0].cycles_measured == report.verification.per_layer[0].cycles_model
    assert r["verification"]["passed"] and r["verification"]["mismatches"] == 0
    assert r["verification"]["cycle_model_matches_rtl"]
    assert r["compression"]["param_ratio"] == pytest.approx(4.0, rel=1e-3)
    for f in ("report.md", "report.html", "report.json", "model.dpack", "rtl/doping_accel.v"):
        assert (out / f).is_file()
    html = (out / "report.html").read_text()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 4 and all(len(i) > 2000 for i in imgs)  # plots embedded, not linked
    # one document, two renderings: the same sections, tables (header and rows) and figures in both
    md = (out / "report.md").read_text()
    assert re.findall(r"^## (.+)$", md, re.M) == re.findall(r"<h2>(.+?)</h2>", html)
    lines = md.splitlines()
    md_headers = [[c.strip() for c in line.strip("| ").split(" | ")] for line, nxt in zip(lines, lines[1:])
                  if line.startswith("| ") and nxt.startswith("|---")]
    html_headers = [re.findall(r"<th>(.*?)</th>", row) for row in re.findall(r"<tr>(<th>.*?)</tr>", html)]
    assert md_headers == html_headers and len(md_headers) == 3
    assert md.count("\n| ") == html.count("<tr>") and md.count("](") == len(imgs)
    assert "Training" in re.findall(r"<h2>(.+?)</h2>", html)  # the run's curve, per epoch
    assert "PASSED" in html and f"{r['per_vector']['cycles']} per vector" in html
    assert f"{r['compression']['param_ratio']:.2f}x parameters" in html
    # the exported pack carries the integer LSTM: the flow ran it token by token on the LSTM top
    t = r["lstm"]
    assert t["passed"] and t["tokens"] >= 20 and t["cycle_model_matches_rtl"] and t["resident"]
    assert r["config"]["lstm_cell"] == 1 and t["cycles_per_step"] == t["cycles_per_step_model"]
    assert f"LSTM token:   {t['cycles_per_token']} cycles" in html
    # accuracy beside the hardware numbers, where the outputs are, and progress on the way
    assert set(r["accuracy"]) == {"test_ppl_float", "test_ppl_golden_int8", "test_ppl_int_lstm"}
    assert "accuracy:     test perplexity float" in html and f"Verilog {out / 'rtl' / 'doping_accel.v'}" in html
    logs = flow_dir[2]
    assert any(l.startswith("[train] epoch 4:") for l in logs) and any(l.startswith("[sim] lstm.l1.gates:") for l in logs)
    assert any(l.startswith("[sim-lstm] 24 tokens, 0 mismatching") for l in logs)


def test_flow_reuses_unchanged_stages(flow_dir):
    out, _, _ = flow_dir
    logs = []
    flow(out, vectors=10, log=logs.append)
    assert sum("unchanged, reused" in l for l in logs) == 6  # train, export, rtl, sim, sim-lstm, estimate


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make report-check)")
def test_report_renders_in_headless_chromium(flow_dir, tmp_path):
    from PIL import Image

    out, _, _ = flow_dir
    png = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1000,1400",
                    (out / "report.html").as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(png).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100 and sum(1 for h in img.histogram() if h) > 20  # text and plots, not a blank page


def test_first_run_errors(tmp_path, capsys):
    assert main(["flow", "--pack", str(tmp_path / "missing.dpack"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["flow", "-o", str(blocker / "out")]) == 2  # cannot create a folder inside a file
    assert "is not writable" in capsys.readouterr().err
    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--shape", "260x130", "--ratio", "10", "-o", str(pack)]) == 0
    assert main(["flow", "--pack", str(pack), "--config", "minimal", "-o", str(tmp_path / "f")]) == 2
    assert "Pick a larger --config" in capsys.readouterr().err
    assert main(["flow", "--checkpoint", str(tmp_path), "-o", str(tmp_path / "g")]) == 2
    assert "not a training run folder" in capsys.readouterr().err


def test_export_takes_the_corpus_from_data(flow_dir, tmp_path, capsys):
    """issue 32: `doping export RUN --data DIR` reads DIR, not the path in the run's config (a
    shipped model's may not exist here); a corpus with another vocabulary is one line, exit 2."""
    import json

    out, _, _ = flow_dir
    cfg = json.loads((out / "run" / "config.json").read_text())
    moved = tmp_path / "run"
    shutil.copytree(out / "run", moved)
    (moved / "config.json").write_text(json.dumps({**cfg, "data": str(tmp_path / "gone")}))
    assert main(["export", str(moved), "--data", "tiny", "--out", str(tmp_path / "t.dpack"), "--no-eval",
                 "--calib-vectors", "64"]) == 0
    assert (tmp_path / "t.dpack").is_file()
    assert main(["export", str(moved), "--out", str(tmp_path / "u.dpack"), "--no-eval"]) == 2
    assert "gone" in capsys.readouterr().err and not (tmp_path / "u.dpack").exists()
    assert main(["export", "models/ptb-h200-dense", "--data", "tiny", "--out", str(tmp_path / "v.dpack")]) == 2
    assert "not the corpus it was trained on" in capsys.readouterr().err


def test_export_reports_its_stages(flow_dir, tmp_path, monkeypatch, capsys):
    """issue 32: a long export says what it is doing (stderr, when asked or on a terminal)."""
    out, _, _ = flow_dir
    monkeypatch.setenv("DOPING_PROGRESS", "1")
    try:
        assert main(["export", str(out / "run"), "--out", str(tmp_path / "t.dpack"), "--calib-vectors", "64"]) == 0
    finally:
        from doping.progress import enable

        monkeypatch.setenv("DOPING_PROGRESS", "0")
        enable()  # progress off again for the tests after this one
    err = capsys.readouterr().err
    for stage in ("collecting 64 gate input vectors", "quantising", "test perplexity 1/3", "2/3", "3/3"):
        assert stage in err, err


def test_no_stage_is_silent(tmp_path, monkeypatch):
    """issue 32: a stage that runs long says so every Stages.HEARTBEAT_S seconds (here 0.2 s)."""
    import time

    from doping.flow import Stages

    monkeypatch.setattr(Stages, "HEARTBEAT_S", 0.2)
    lines = []
    st = Stages(tmp_path, lambda m: lines.append((time.time(), m)))
    st.run("slow", "x", [], lambda: time.sleep(1.1) or 1)
    beats = [m for _, m in lines if m.startswith("[slow] still running")]
    assert len(beats) >= 4 and lines[-1][1].startswith("[slow] done")
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    assert max(gaps) < 0.6


def test_the_quick_demo_is_never_silent_for_long(tmp_path):
    """`doping demo --quick` as a user sees it (progress on): no gap between output lines over
    HEARTBEAT_S plus scheduling slack on a loaded 2-core machine."""
    import subprocess
    import sys
    import time

    from doping.flow import Stages

    env = dict(__import__("os").environ, DOPING_PROGRESS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "doping.cli", "demo", "--quick", "-o", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    stamps = [time.time()]
    for _ in proc.stdout:
        stamps.append(time.time())
    assert proc.wait(timeout=600) == 0
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < Stages.HEARTBEAT_S + 5, max(gaps)
