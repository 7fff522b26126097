"""Training step time of the PTB 2x200 language model under each way the LSTM can run CMR.

One training step = forward + backward of a (bptt x batch) PTB-shaped batch through the whole
model (embedding, two DKP-gated LSTM layers at 25x, decoder), no optimiser. Paths:

- ``fused``: no per-step CMR (``--cmr none``; ``seq`` and ``dropconnect`` take the same kernel):
  torch's fused LSTM on the materialised W = kron(A, B) + S.
- ``step loop``: a CMR that varies W per time step (``dropout``, ``path``): the gate's
  ``step_fn`` once per time step in Python, as ``DopedLSTM`` runs it.

Interleaved runs, medians (ms per step) and the ratio against ``fused``: what a PTB run under
elementwise-dropout CMR costs against one under ``seq`` or ``dropconnect``.

  python bench/cmr_train_speed.py [--repeats 21] [--threads 1] [--cmr dropout]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from doping.lm import LanguageModel


def _step(model, x):
    model.zero_grad(set_to_none=True)
    logits, _ = model(x)
    logits.float().logsumexp(-1).mean().backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cmr", choices=["dropout", "path"], default="dropout")
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab = 10000
    x = torch.randint(0, vocab, (args.bptt, args.batch))
    gate = {"kp_share": 0.5}
    plain = LanguageModel(vocab, args.hidden, 2, 0.3, "dkp", 25.0, "none", 0.0, gate_options=gate).train()
    loop = LanguageModel(vocab, args.hidden, 2, 0.3, "dkp", 25.0, args.cmr, 0.3, gate_options=gate).train()
    assert all(g.fused_weights(args.batch) is None for g in loop.lstm.gates)  # really the step loop
    paths = {"fused": plain, "step loop": loop}
    times = {k: [] for k in paths}
    for _ in range(2):
        for model in paths.values():
            _step(model, x)
    for _ in range(args.repeats):
        for name, model in paths.items():
            t = time.perf_counter()
            _step(model, x)
            times[name].append(time.perf_counter() - t)
    print(f"PTB LM training step (forward + backward), {args.hidden}x2 LSTM, DKP 25x (KP share 0.5), "
          f"cmr {args.cmr} p 0.3, batch {args.batch} x bptt {args.bptt}; torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.machine()}, {date.today()}, median of {args.repeats} "
          f"interleaved runs\n")
    print("| path | ms per step | × fused |")
    print("|---|---:|---:|")
    base = statistics.median(times["fused"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {1e3 * med:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
