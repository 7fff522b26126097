"""PTB table: dense vs DKP (with and without CMR) vs pruning, LMF, HMD and KP at one compression
ratio of the LSTM gate matrices, all through the same training loop and schedule.

Every compressed run starts from the trained dense run (nearest-Kronecker factors + residual
overlay for DKP, truncated SVD for LMF/HMD, the dense weights for pruning) and fine-tunes while
the sparse parts are annealed to the budget.

  python bench/ptb_table.py run    --data ../shared/data/ptb --runs runs/ptb --ratio 25 --jobs 2
  python bench/ptb_table.py report --runs runs/ptb --ratio 25 --out docs/ptb_table.md --plot docs/cma.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DENSE = ["--method", "dense", "--epochs", "6", "--decay-after", "4", "--threads", "2"]
FINETUNE = ["--epochs", "3", "--lr", "5", "--decay-after", "2", "--anneal-start", "0", "--anneal-end", "0.6",
            "--threads", "1", "--curve-every", "250"]
VARIANTS = {  # name: extra arguments
    "dkp_cmr": ["--method", "dkp", "--cmr", "dropout", "--cmr-p", "0.3"],
    "dkp": ["--method", "dkp"],
    "prune": ["--method", "prune"],
    "lmf": ["--method", "lmf"],
    "hmd": ["--method", "hmd"],
    "kp": ["--method", "kp"],
    # the dense model fine-tuned with the same 3-epoch schedule: the fair reference for the losses
    "dense_ft": ["--method", "dense"],
}
LABELS = {"dense": "dense", "dkp_cmr": "DKP + CMR (overlay dropout 0.3)", "dkp": "DKP, no CMR",
          "prune": "magnitude pruning", "lmf": "LMF (low rank)", "hmd": "HMD", "kp": "KP alone",
          "dense_ft": "dense, fine-tuned like the others"}


def doping_cmd(*args):
    return [sys.executable, "-m", "doping.cli", "train", "--no-progress", *map(str, args)]


def run(args):
    runs = Path(args.runs)
    dense = runs / "dense"
    if not (dense / "final.json").is_file():
        subprocess.run(doping_cmd("--data", args.data, *DENSE, "-o", dense), check=True)
    pending = [n for n in VARIANTS if not (runs / f"{n}_r{args.ratio:g}" / "final.json").is_file()]
    active = []
    while pending or active:
        while pending and len(active) < args.jobs:
            name = pending.pop(0)
            out = runs / f"{name}_r{args.ratio:g}"
            log = open(runs / f"{name}_r{args.ratio:g}.log", "w")
            cmd = doping_cmd("--data", args.data, "--ratio", args.ratio, "--init-from", dense, *FINETUNE,
                             *VARIANTS[name], "-o", out)
            if (out / "checkpoint.pt").is_file():
                cmd.append("--resume")
            print(" ".join(map(str, cmd)), flush=True)
            active.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for item in list(active):
            if item[1].poll() is not None:
                print(f"{item[0]} finished with status {item[1].returncode}", flush=True)
                active.remove(item)


def report(args):
    runs = Path(args.runs)
    dense = json.loads((runs / "dense" / "final.json").read_text())
    rows = [("dense", dense)]
    for name in VARIANTS:
        f = runs / f"{name}_r{args.ratio:g}" / "final.json"
        if f.is_file():
            rows.append((name, json.loads(f.read_text())))
    ft = dict(rows).get("dense_ft")
    lines = [
        "| model | test ppl | vs dense (6 ep) | vs dense fine-tuned (6 + 3 ep) | LSTM param ratio | "
        "LSTM stored-bit ratio | epochs | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    from doping.train import load_run_model

    for name, s in rows:
        bits = _bit_ratio(load_run_model(runs / ("dense" if name == "dense" else f"{name}_r{args.ratio:g}"))[0])
        loss = "—" if name == "dense" else f"{100 * (s['test_ppl'] / dense['test_ppl'] - 1):+.1f} %"
        loss_ft = "—" if not ft or name == "dense_ft" else f"{100 * (s['test_ppl'] / ft['test_ppl'] - 1):+.1f} %"
        epochs = s["epochs"] if name == "dense" else f"{dense['epochs']} + {s['epochs']}"
        lines.append(f"| {LABELS[name]} | {s['test_ppl']:.2f} | {loss} | {loss_ft} | {s['lstm']['param_ratio']:.2f}× | "
                     f"{bits:.2f}× | {epochs} | {s['wall_seconds'] / 60:.0f} min |")
    missing = [LABELS[n] for n in VARIANTS if n not in dict(rows)]
    if missing:
        lines.append(f"\nNot finished within the session: {', '.join(missing)}.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.plot:
        plot_cma(runs, args.ratio, args.plot)


def _bit_ratio(model) -> float:
    """Stored-bit ratio of the LSTM gate matrices at 8-bit values (doping.compression.account);
    pruning counts CSR indices, LMF/HMD/KP/dense store no indices."""
    from doping.compression import VALUE_BITS, index_bits
    from doping.nn.dkp import DKPLinear
    from doping.nn.structured import PrunedLinear

    dense = stored = 0
    for g in model.lstm.gates:
        m, n = g.out_features, g.in_features
        dense += m * n * VALUE_BITS
        stored += g.n_params() * VALUE_BITS
        nnz = int(g.mask.sum()) if isinstance(g, PrunedLinear) or (isinstance(g, DKPLinear) and g.s is not None) else 0
        if nnz:
            stored += nnz * index_bits(n) + (m + 1) * index_bits(nnz + 1)
    return dense / stored


def plot_cma(runs: Path, ratio: float, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for name in ("dkp", "dkp_cmr", "prune"):
        f = runs / f"{name}_r{ratio:g}" / "curve.json"
        if not f.is_file():
            continue
        c = json.loads(f.read_text())
        ax.plot([e["step"] for e in c], [e["valid_ppl"] for e in c], label=LABELS[name], marker=".", ms=3)
    cfg = json.loads((runs / f"dkp_r{ratio:g}" / "config.json").read_text()) if (runs / f"dkp_r{ratio:g}").is_dir() else None
    if cfg:
        steps = max(e["step"] for e in json.loads((runs / f"dkp_r{ratio:g}" / "curve.json").read_text())) + 1
        ax.axvline(cfg["anneal_end"] * steps, color="grey", ls="--", lw=0.8, label="annealing ends (S at target nnz)")
    ax.set_xlabel("optimiser step of the fine-tuning (S pruned from dense to target on the left of the line)")
    ax.set_ylabel("valid perplexity (first 10k tokens)")
    ax.set_title(f"Co-matrix adaptation on PTB at {ratio:g}×: DKP with and without CMR", fontsize=9)
    ax.legend(fontsize=7)
    ax.xaxis.label.set_size(7)
    fig.tight_layout()
    fig.savefig(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--runs", default="runs/ptb")
    r.add_argument("--ratio", type=float, default=25.0)
    r.add_argument("--jobs", type=int, default=2)
    r.set_defaults(func=run)
    p = sub.add_parser("report")
    p.add_argument("--runs", default="runs/ptb")
    p.add_argument("--ratio", type=float, default=25.0)
    p.add_argument("--out", default="docs/ptb_table.md")
    p.add_argument("--plot", default="docs/cma.png")
    p.set_defaults(func=report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
