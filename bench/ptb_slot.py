"""One GPU slot of the 2x650 PTB table (issue 28): a command that fits a 15-minute device slot with
no network, resumes what earlier slots left, trains what fits, and hands its state back as at most
8 result files of at most 16 MiB.

On the device (only the checkout travels: carry the ignored ``build/ptb`` with the three PTB text
files and ``build/slot``, the state earlier slots left; nothing is installed):

  python bench/ptb_slot.py run --out "$OUT" --budget 600

Back here, with the files the slot returned (``files_at``):

  python bench/ptb_slot.py unpack FILES_AT      # -> runs/ptb (rows), build/slot (next slot's state)
  python bench/ptb_table.py report --runs runs/ptb --hidden 200 650

``run`` restores ``--state`` (a tar in parts) into a scratch runs folder, starts the committed dense
2x650 (``models/ptb-h650-dense``, fp16 in parts) when it is there, runs ``bench/ptb_table.py run``
on ``SLOT_PLAN`` (the 2x650 25x table under the converged schedule, in priority order) until
``--budget`` seconds less the time to pack, then packs: every run's JSON, commands and logs; each
unfinished run's checkpoint (model tensors in float16: a resume loads them into float32) and its
best weights where the best epoch is not the last; each finished run's best weights (fp16) for
export at home. The pack is one tar cut into ``slot.partNN`` files plus ``slot.json`` (what
finished, what was left out for lack of room). ``unpack`` joins the parts into ``--runs``, writes
the next slot's state (JSON of every run and the checkpoints of unfinished ones; at most
``CARRY_BYTES``, the device call's carry limit less the PTB text), and commits nothing: a dense
2x650 that finished is written to ``models/ptb-h650-dense`` in parts, to be committed by hand.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptb_compact import halved  # noqa: E402
from ptb_table import read_parts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PART_BYTES = 16 * 2**20 - 64 * 1024  # a result file is at most 16 MiB
MAX_PARTS = 7  # + slot.json: the 8 files a slot returns
CARRY_BYTES = 56 * 2**20  # the next slot's state: 64 MiB of carry less the PTB text and margin
PACK_RESERVE_S = 60.0  # seconds kept at the end of the budget for stopping runs and packing
#: what a slot trains, in order (bench/ptb_table.py run names; the dense first, it feeds the rest)
SLOT_PLAN = ["h650/dense", "h650/conv/prune_r25_s0", "h650/conv/dkp_sharerule_none_r25_s0",
             "h650/conv/dkp_share0.5_dropconnect-ramp_r25_s0", "h650/conv/prune_r25_s1",
             "h650/conv/dkp_sharerule_none_r25_s1", "h650/conv/lmf_r25_s0", "h650/conv/hmd_split0.25_r25_s0",
             "h650/kp_r25_s0", "h650/conv/prune_r10_s0", "h650/conv/dkp_sharerule_none_r10_s0",
             "h650/conv/prune_r50_s0", "h650/conv/dkp_sharerule_none_r50_s0"]
TEXT = (".json", ".cmd", ".log", ".txt")


def half_state(path: Path) -> bytes:
    """A checkpoint or best.pt with its model's floating tensors in float16, serialised."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    obj["model"] = halved(obj["model"])
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def finished(run: Path) -> bool:
    return (run / "final.json").is_file()


def best_is_last(run: Path) -> bool:
    """The best epoch is the last one checkpointed: best.pt holds the checkpoint's weights."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        best = min(range(len(metrics)), key=lambda i: metrics[i]["valid_ppl"])
        return best == len(metrics) - 1
    except (OSError, ValueError, KeyError):
        return False


def pack_members(runs: Path, folders: list[str], state_for: Path | None = None) -> list[tuple[str, object, str]]:
    """(name in the tar, content, kind) of the runs under ``runs/<folder>``, in priority order:
    text first, then each unfinished run's checkpoint (and best weights where they differ), then
    the finished runs' best weights. ``state_for``: the next slot's state, which takes a finished
    run's best weights only for a dense run that ``state_for`` (the models folder) does not hold."""
    text, ckpts, bests = [], [], []
    for folder in folders:
        for f in sorted((runs / folder).rglob("*")):
            if f.is_file() and f.suffix in TEXT:
                text.append((str(f.relative_to(runs)), f, "text"))
        for ckpt in sorted((runs / folder).rglob("checkpoint.pt")):
            run = ckpt.parent
            rel = str(run.relative_to(runs))
            if not finished(run):
                ckpts.append((f"{rel}/checkpoint.pt", half_state(ckpt), "checkpoint"))
                if (run / "best.pt").is_file() and not best_is_last(run):
                    ckpts.append((f"{rel}/best.pt", half_state(run / "best.pt"), "best of an unfinished run"))
            elif (run / "best.pt").is_file() and (
                    state_for is None or (run.name == "dense" and not (state_for / f"ptb-{folder}-dense").is_dir())):
                bests.append((f"{rel}/best.pt", half_state(run / "best.pt"), "best"))
    return text + ckpts + bests


def hidden_folders(plan: list[str]) -> list[str]:
    """The ``h<H>`` folders a plan's runs live in."""
    return sorted({name.split("/")[0] for name in plan})


def write_tar(members, budget: int) -> tuple[bytes, list[str]]:
    """The members that fit in ``budget`` bytes, as one tar; the names left out."""
    buf, left = io.BytesIO(), []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content, kind in members:
            data = content.read_bytes() if isinstance(content, Path) else content
            if buf.tell() + len(data) + 2048 > budget - 10240:
                left.append(f"{name} ({kind}, {len(data) / 2**20:.1f} MiB)")
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), left


def write_parts(data: bytes, folder: Path, prefix: str = "slot") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{prefix}.part*"):
        old.unlink()
    parts = []
    for i in range(0, max(len(data), 1), PART_BYTES):
        p = folder / f"{prefix}.part{i // PART_BYTES:02d}"
        p.write_bytes(data[i:i + PART_BYTES])
        parts.append(p)
    return parts


def extract(data: bytes, runs: Path) -> list[str]:
    runs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        tar.extractall(runs, filter="data")  # member names stay inside runs
    return names


def cmd_run(a) -> int:
    t0 = time.time()
    runs = Path(a.runs)
    restored = read_parts(Path(a.state), "slot")
    if restored is not None:
        names = extract(restored, runs)
        print(f"[slot] restored {len(names)} files of earlier slots into {runs}", flush=True)
    deadline = a.budget - a.reserve - (time.time() - t0)
    cmd = [sys.executable, str(ROOT / "bench" / "ptb_table.py"), "run", "--data", a.data, "--runs", str(runs),
           "--hidden", *(f[1:] for f in hidden_folders(a.plan)), "--jobs", str(a.jobs),
           "--threads", str(a.threads), "--device", a.device, "--deadline", f"{max(deadline, 1):.0f}",
           "--models", a.models, "--only", *a.plan]
    if a.max_batches:
        cmd += ["--max-batches", str(a.max_batches)]
    if a.eval_tokens:
        cmd += ["--eval-tokens", str(a.eval_tokens)]
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'python'}:{os.environ.get('PYTHONPATH', '')}",
               PYTHONUNBUFFERED="1")
    print(f"[slot] training for up to {deadline:.0f} s: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, env=env, cwd=ROOT, check=False)
    out = Path(a.out)
    data, left = write_tar(pack_members(runs, hidden_folders(a.plan)), MAX_PARTS * PART_BYTES)
    parts = write_parts(data, out)
    done = sorted(str(f.parent.relative_to(runs)) for f in runs.rglob("final.json"))
    partial = sorted(str(f.parent.relative_to(runs)) for f in runs.rglob("checkpoint.pt") if not finished(f.parent))
    (out / "slot.json").write_text(json.dumps({"finished": done, "unfinished": partial, "left_out": left,
                                               "parts": [p.name for p in parts], "seconds": round(time.time() - t0),
                                               "device": a.device}, indent=1) + "\n")
    print(f"[slot] {len(parts)} parts, {len(data) / 2**20:.1f} MiB; finished {done}; unfinished {partial}"
          + (f"; left out {left}" if left else ""), flush=True)
    return 0


def cmd_unpack(a) -> int:
    src = Path(a.files)
    data = read_parts(src, "slot")
    if data is None:
        raise SystemExit(f"ptb_slot: no slot.partNN files in {src}")
    runs = Path(a.runs)
    names = extract(data, runs)
    print(f"unpacked {len(names)} files into {runs}")
    if (src / "slot.json").is_file():
        print((src / "slot.json").read_text())
    folders = sorted({n.split("/")[0] for n in names if n.startswith("h")})
    models = Path(a.models)
    for folder in folders:  # a dense run that finished: into models/, fp16 in parts, to commit
        dense, target = runs / folder / "dense", models / f"ptb-{folder}-dense"
        if finished(dense) and (dense / "best.pt").is_file() and not target.exists():
            target.mkdir(parents=True)
            for name in ("config.json", "final.json", "metrics.json"):
                shutil.copy(dense / name, target / name)
            cmd = runs / folder / "dense.cmd"
            (target / "command.txt").write_text(cmd.read_text() if cmd.is_file() else "")
            write_parts(half_state(dense / "best.pt"), target, prefix="best.pt")
            print(f"wrote {target} (fp16 best.pt in parts): commit it so that no slot retrains the dense model")
    state, left = write_tar(pack_members(runs, folders, state_for=models), CARRY_BYTES)
    write_parts(state, Path(a.state))
    print(f"next slot's state: {len(state) / 2**20:.1f} MiB in {a.state}" + (f"; left out {left}" if left else ""))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="on the device: restore, train until the budget, pack into --out")
    r.add_argument("--out", default=os.environ.get("OUT", "build/slot_out"))
    r.add_argument("--budget", type=float, default=600, help="seconds this command may take in all")
    r.add_argument("--reserve", type=float, default=PACK_RESERVE_S, help="seconds of the budget kept for packing")
    r.add_argument("--data", default="build/ptb")
    r.add_argument("--state", default="build/slot")
    r.add_argument("--runs", default=str(Path(tempfile.gettempdir()) / "slot-runs"))
    r.add_argument("--models", default=str(ROOT / "models"))
    r.add_argument("--plan", nargs="+", default=SLOT_PLAN)
    r.add_argument("--device", default="cuda")
    r.add_argument("--jobs", type=int, default=3, help="training processes sharing the device")
    r.add_argument("--threads", type=int, default=4)
    r.add_argument("--max-batches", type=int, default=0, help="smoke tests on CPU only")
    r.add_argument("--eval-tokens", type=int, default=0, help="smoke tests on CPU only")
    r.set_defaults(func=cmd_run)
    u = sub.add_parser("unpack", help="here: the slot's files into --runs, and the next slot's --state")
    u.add_argument("files", help="folder of slot.partNN (and slot.json)")
    u.add_argument("--runs", default="runs/ptb")
    u.add_argument("--state", default="build/slot")
    u.add_argument("--models", default=str(ROOT / "models"))
    u.set_defaults(func=cmd_unpack)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
