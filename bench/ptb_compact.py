"""Shrink finished PTB runs for transport and for ``models/``: the best checkpoint's state dict
with embedding and softmax (and, with ``--half-all``, every tensor) in float16, plus every run's
JSON, commands and logs in one tarball.

  python bench/ptb_compact.py --runs runs/ptb --out OUTDIR --models h200/dense:half-all h200/prune_r25_s0
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import torch

HALF = ("embed.weight", "decoder.weight")


def halved(state: dict, keys=None) -> dict:
    """A model state dict with its floating tensors (those named in ``keys``; None: all) in float16."""
    return {k: (v.half() if v.is_floating_point() and (keys is None or k in keys) else v) for k, v in state.items()}


def compact(run: Path, out: Path, half_all: bool) -> Path:
    ckpt = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    state = halved(ckpt["model"], None if half_all else HALF)
    target = out / (str(run.relative_to(run.parent.parent)).replace("/", "-") + ".pt")
    torch.save({"model": state, "vocab_size": ckpt["vocab_size"], "epoch": ckpt["epoch"],
                "config": json.loads((run / "config.json").read_text())}, target)
    return target


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="*", default=[], help="RUN[:half-all]; RUN may be best:h200/r25 for the best "
                                                           "25x DKP run by validation perplexity")
    a = p.parse_args(argv)
    runs, out = Path(a.runs), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for f in sorted(runs.rglob("*")):
            if f.is_file() and f.suffix in (".json", ".cmd", ".log", ".txt"):
                tar.add(f, arcname=str(f.relative_to(runs)))
    for spec in a.models:
        half_all = spec.endswith(":half-all")
        name = spec.removesuffix(":half-all")
        if name.startswith("best:"):
            h, ratio = name[5:].split("/")
            done = [(json.loads(f.read_text())["valid_ppl"], f.parent) for f in runs.glob(f"{h}/dkp_*_{ratio}_s0/final.json")]
            if not done:
                continue
            run = min(done)[1]
        else:
            run = runs / name
        if (run / "best.pt").is_file():
            print(compact(run, out, half_all), flush=True)


if __name__ == "__main__":
    main()
