"""What carries a compressed PTB model (issue 28): for each finished run, test perplexity whole,
with the overlay S removed (the Kronecker part alone) and with the Kronecker part removed (S
alone), and the share of nonzeros per gate block (i, f, g, o rows of each layer's [W_ih | W_hh]).

  python bench/ptb_anatomy.py runs/ptb/h200/conv/prune_r25_s0 runs/ptb/h200/conv/dkp_sharerule_none_r25_s0 \
      --data ../shared/data/ptb --json docs/ptb_anatomy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from doping.data import batchify, load_corpus
from doping.train import density_by_gate, evaluate, load_run_model, without_kronecker, without_overlay


def anatomy(run: Path, test: torch.Tensor, bptt: int) -> dict:
    model, cfg, _ = load_run_model(run)
    row = {"run": str(run), "method": cfg.method, "ratio": cfg.ratio, "test_ppl": evaluate(model, test, bptt),
           "density_by_gate": density_by_gate(model)}
    if any(getattr(g, "s", None) is not None for g in model.lstm.gates):
        row["test_ppl_without_overlay"] = evaluate(without_overlay(model), test, bptt)
        row["test_ppl_without_kronecker"] = evaluate(without_kronecker(model), test, bptt)
        row["kp_energy_share"] = sum(g.kp_energy_share() for g in model.lstm.gates) / len(model.lstm.gates)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default="../shared/data/ptb")
    ap.add_argument("--json", default="docs/ptb_anatomy.json")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    corpus = load_corpus(a.data)
    test = batchify(corpus.test, 10)
    path = Path(a.json)
    rows = json.loads(path.read_text()) if path.is_file() else []
    for run in a.runs:
        r = anatomy(Path(run), test, 35)
        rows = [x for x in rows if x["run"] != r["run"]] + [r]
        path.write_text(json.dumps(rows, indent=1) + "\n")
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
