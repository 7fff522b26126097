"""The GPU-slot command of the PTB table (bench/ptb_slot.py, issue 28) on CPU at a smoke budget: a
slot packs an unfinished run into result files of at most 16 MiB, the next slot's state carries it
back, and a later slot resumes it to the end; a finished dense run lands in models/ in parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import ptb_slot  # noqa: E402
from ptb_table import plan  # noqa: E402

SMOKE = ["--max-batches", "2", "--eval-tokens", "200"]
PRUNE = "h200/conv/prune_r25_s0"


def _slot(*argv, cwd=ROOT):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "ptb_slot.py"), *argv], capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_a_slot_packs_an_unfinished_run_and_the_next_resumes_it(tmp_path):
    from dataclasses import fields

    from doping.cli import build_parser
    from doping.train import TrainConfig, train

    models = tmp_path / "models"
    models.mkdir()
    device_runs, home = tmp_path / "device1", tmp_path / "home"
    # on "the device": the dense run, and the prune run interrupted after its first epoch
    subprocess.run([sys.executable, str(ROOT / "bench" / "ptb_table.py"), "run", "--data", "tiny", "--runs",
                    str(device_runs), "--models", str(models), "--only", "h200/dense", *SMOKE], check=True,
                   capture_output=True, timeout=600, cwd=ROOT)
    (job,) = [j for j in plan(200, device_runs) if j.name == PRUNE]
    args = build_parser().parse_args(["train", "--data", "tiny", *map(str, job.args), *SMOKE,
                                      "-o", str(device_runs / PRUNE)])
    opts = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    (device_runs / PRUNE).parent.mkdir(parents=True, exist_ok=True)
    assert train(TrainConfig.from_dict(opts), device_runs / PRUNE, progress=False, log=lambda s: None,
                 stop_after=1) is None  # stopped after its first epoch, as the deadline would stop it
    out1 = tmp_path / "out1"
    _slot("run", "--runs", str(device_runs), "--state", str(tmp_path / "none"), "--out", str(out1), "--data", "tiny",
          "--models", str(models), "--plan", "h200/dense", "--device", "cpu", "--jobs", "1", "--threads", "1",
          "--reserve", "0", *SMOKE)
    slot1 = json.loads((out1 / "slot.json").read_text())
    assert slot1["finished"] == ["h200/dense"] and slot1["unfinished"] == [PRUNE] and not slot1["left_out"]
    parts = sorted(out1.glob("slot.part*"))
    assert parts and len(parts) + 1 <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in parts)

    # here: the rows, the dense model in parts for models/, the next slot's state
    state = tmp_path / "state"
    _slot("unpack", str(out1), "--runs", str(home), "--state", str(state), "--models", str(models))
    assert (home / "h200" / "dense" / "final.json").is_file() and (home / PRUNE / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (models / "ptb-h200-dense").glob("best.pt.part*")) == ["best.pt.part00"]

    # the next slot, on a bare machine: the state and the committed dense model are all it has
    device2, out2 = tmp_path / "device2", tmp_path / "out2"
    _slot("run", "--runs", str(device2), "--state", str(state), "--out", str(out2), "--data", "tiny",
          "--models", str(models), "--plan", PRUNE, "--device", "cpu", "--jobs", "1", "--threads", "1",
          "--reserve", "0", *SMOKE)
    assert "--resume" in (device2 / f"{PRUNE}.cmd").read_text()
    slot2 = json.loads((out2 / "slot.json").read_text())
    assert slot2["finished"] == [PRUNE] or PRUNE in slot2["finished"]
    _slot("unpack", str(out2), "--runs", str(home), "--state", str(state), "--models", str(models))
    final = json.loads((home / PRUNE / "final.json").read_text())
    metrics = json.loads((home / PRUNE / "metrics.json").read_text())
    assert final["method"] == "prune" and metrics[0]["epoch"] == 1 and len(metrics) >= 2
