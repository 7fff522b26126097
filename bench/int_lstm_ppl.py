"""PTB test perplexity of a trained run through the whole integer LSTM (issue 13; golden/lstm.py,
docs/numerics.md §9) next to float and next to int8 gate mat-vecs with float cells.

  python bench/int_lstm_ppl.py runs/ptb/h200/dkp_share0.5_none_r25_s0 [--steps N]
"""

from __future__ import annotations

import argparse
import json
import time

from doping import int_lstm
from doping.data import batchify, load_corpus
from doping.export import CELL_CALIBRATION_CHUNKS, collect_gate_inputs, evaluate_quantised, gate_layers
from doping.train import evaluate, load_run_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--steps", type=int, help="only the first N test steps (default: the whole test split)")
    ap.add_argument("--calib-vectors", type=int, default=4096)
    args = ap.parse_args()
    model, cfg, _ = load_run_model(args.run)
    corpus = load_corpus(cfg.data)
    valid, test = batchify(corpus.valid, cfg.eval_batch), batchify(corpus.test, cfg.eval_batch)
    if args.steps:
        test = test[: args.steps]
    calib = collect_gate_inputs(model, valid, cfg.bptt, args.calib_vectors)
    per_gate = [gate_layers(f"lstm.l{l}.gates", g, x, {}) for l, (g, x) in enumerate(zip(model.lstm.gates, calib))]
    cells = int_lstm.calibrate(model, per_gate, valid[: CELL_CALIBRATION_CHUNKS * cfg.bptt], cfg.bptt)
    t0 = time.time()
    out = {"run": args.run, "test_tokens": int((test.shape[0] - 1) * test.shape[1]),
           "float": evaluate(model, test, cfg.bptt), "int8_gates": evaluate_quantised(model, per_gate, test, cfg.bptt),
           "int_lstm": int_lstm.evaluate(model, cells, test, cfg.bptt),
           "pre_activation_scale": [int_lstm.pre_scale(c) for c in cells]}
    out["int_lstm_vs_float"] = out["int_lstm"] / out["float"] - 1
    out["seconds"] = time.time() - t0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
