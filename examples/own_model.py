"""Compress your own model with doping, end to end: a small MLP language model (not an LSTM: the
previous CONTEXT words' embeddings -> two hidden layers -> next-word logits) on the corpus the
package ships, trained dense, its hidden layers swapped for doped Kronecker layers
(``doping.compress``), fine-tuned while the overlay anneals, exported as a model pack, run on the
generated accelerator in Verilator against the golden model, and priced by the estimator.

    python examples/own_model.py [--ratio 4] [--steps 600] [--out build/own_model]

Prints perplexities (dense, compressed float), the pack's compression, the Verilator verdict and
the estimate per token; ``run()`` returns them (tests/test_compress.py runs it small).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import doping.compress as dc
from doping.data import load_corpus

CONTEXT = 3


class MLPLanguageModel(nn.Module):
    def __init__(self, vocab: int, emb: int = 16, hidden: int = 64):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.fc1 = nn.Linear(CONTEXT * emb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ctx):  # ctx: (batch, CONTEXT) word ids
        h = torch.relu(self.fc1(self.emb(ctx).flatten(1)))
        return self.out(torch.relu(self.fc2(h)))


def windows(ids: torch.Tensor):
    """(contexts, next words) of every position of a token stream."""
    ctx = torch.stack([ids[i: len(ids) - CONTEXT + i] for i in range(CONTEXT)], 1)
    return ctx, ids[CONTEXT:]


def perplexity(model, ctx, nxt) -> float:
    with torch.no_grad():
        model.eval()
        loss = nn.functional.cross_entropy(model(ctx), nxt)
        model.train()
    return float(torch.exp(loss))


def train(model, ctx, nxt, steps, lr, batch=64, seed=0, annealer=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        idx = torch.randint(len(ctx), (batch,), generator=g)
        if annealer is not None:
            annealer.step(step)
        loss = nn.functional.cross_entropy(model(ctx[idx]), nxt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if annealer is not None:
            annealer.enforce()


def run(ratio: float = 4, steps: int = 600, out: str | Path = "build/own_model", vectors: int = 4,
        simulate: bool = True) -> dict:
    torch.manual_seed(0)
    corpus = load_corpus("tiny")
    tr, te = (windows(torch.as_tensor(getattr(corpus, s), dtype=torch.long)) for s in ("train", "test"))
    model = MLPLanguageModel(corpus.vocab_size)
    train(model, *tr, steps, lr=3e-3)
    report = {"dense_test_ppl": perplexity(model, *te)}

    handle = dc.compress(model, ratio=ratio, method="dkp", kp_share=0.25, include=["fc1", "fc2"])
    annealer = handle.annealer(start=0, end=steps // 2, every=10)
    train(model, *tr, steps, lr=1e-3, seed=1, annealer=annealer)
    report["dkp_test_ppl"] = perplexity(model, *te)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pack = out / "own_model.dpack"
    layers = dc.export_pack(model, handle, calib=lambda: model(te[0][:512]), path=pack)
    report["pack"] = {l.name: {"shape": [l.m, l.n], "factors": l.factor_shapes, "nnz": l.nnz} for l in layers}

    from doping.config import PRESETS
    from doping.estimate.designs import fit_layers
    from doping.estimate.price import price_layers
    from doping.pack import read_pack, totals

    layers = read_pack(pack).layers
    report["compression"] = totals(layers)
    cfg = fit_layers(PRESETS["minimal"], layers)
    est = price_layers(layers, cfg)
    report["estimate"] = {"cycles": est.cycles, "interval_cycles": est.interval_cycles,
                          "energy_nj": est.energy_pj / 1e3, "area_mm2": est.area_mm2}
    if simulate:
        from doping.sim.runner import run as simulate_pack

        r = simulate_pack([pack], cfg, vectors=vectors, y_stall=0.2)
        report["verilator"] = {"vectors": r.vectors, "mismatches": r.mismatches,
                               "latency_cycles": r.latency_cycles[:len(layers)]}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--out", default="build/own_model")
    a = ap.parse_args()
    print(json.dumps(run(a.ratio, a.steps, a.out), indent=2, default=str))
