"""Export a trained run to a model pack, and evaluate the quantised model through the golden
model's integer arithmetic.

Each LSTM layer's gate matrix ``[W_ih | W_hh]`` (4H x (I+H), acting on ``[x; h]``) becomes one
pack layer ``lstm.l<i>.gates``: DKP and KP as factors and overlay, pruning as an overlay without
a Kronecker part, dense as A = W with B = [1], and LMF as a chain of two layers
``lstm.l<i>.gates.v`` then ``.u`` (HMD and sums of Kronecker products are not expressible as
one accelerator layer or a chain, and are refused). Input, intermediate and output scales are
calibrated on the gate inputs the float model sees on the validation split. The pack's LSTM
section (version 3) holds the integer LSTM around the gate layers (``doping.int_lstm.calibrate``:
bias, activation tables, cell and h requantisations), which the LSTM top runs token by token;
embedding and softmax stay on the host in float.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from doping import golden
from doping.data import batchify, load_corpus
from doping.errors import DopingError
from doping.golden import QuantLayer
from doping.nn.dkp import DKPLinear
from doping.nn.structured import DenseGate, LowRankLinear, PrunedLinear
from doping.pack import totals, write_pack
from doping.progress import PROGRESS
from doping.quantize import quantise_layer, quantise_tensor
from doping.train import evaluate, evaluate_with_gate_hooks, load_run_model


EXPORTABLE = ("dkp", "kp", "prune", "dense", "lmf")
#: Validation chunks (of BPTT steps) the integer LSTM's activation and cell ranges are measured on.
CELL_CALIBRATION_CHUNKS = 50


def overlay_csr(gate):
    """The masked overlay (DKP) or masked weights (pruning) as CSR by row (rowptr, cols, float values)."""
    values = gate.w if isinstance(gate, PrunedLinear) else gate.s  # both read masked (doping.nn.masked)
    if values is None:
        return np.zeros(gate.out_features + 1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    s = values.detach().double().numpy()
    mask = gate.mask.numpy()
    rows, cols = np.nonzero(mask)
    rowptr = np.zeros(gate.out_features + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=gate.out_features), out=rowptr[1:])
    return rowptr, cols.astype(np.int64), s[rows, cols]


def collect_gate_inputs(model, data: torch.Tensor, bptt: int, vectors: int, seed: int = 0) -> list[np.ndarray]:
    """Up to ``vectors`` random gate input vectors ``[x; h]`` per LSTM layer from running ``data``."""
    seen = [[] for _ in model.lstm.gates]
    evaluate_with_gate_hooks(model, data, bptt, lambda l, inp, out: seen[l].append(inp.double().numpy().copy()))
    rng = np.random.default_rng(seed)
    out = []
    for chunks in seen:
        allv = np.concatenate(chunks)
        out.append(allv[rng.choice(len(allv), size=min(vectors, len(allv)), replace=False)])
    return out


def export_run(run: str | Path, out: str | Path, calib_vectors: int = 4096, evaluate_test: bool = True,
               log=print, data: str | None = None) -> dict:
    """Write the pack of ``run`` to ``out``; return a report with float and quantised perplexities.
    ``data``: the corpus folder (default: the one the run was trained on, as its config names it)."""
    model, cfg, ckpt = load_run_model(run)
    if cfg.method not in EXPORTABLE:
        raise DopingError(f"run {run} was trained with method {cfg.method!r}; export takes {', '.join(EXPORTABLE)} "
                          "runs (the others are not one accelerator layer or a chain of them)")
    corpus = load_corpus(data or cfg.data)
    if corpus.vocab_size != ckpt["vocab_size"]:
        raise DopingError(f"corpus {data or cfg.data} has {corpus.vocab_size} words, the run's model "
                          f"{ckpt['vocab_size']}: not the corpus it was trained on")
    valid = batchify(corpus.valid, cfg.eval_batch)
    t0 = time.perf_counter()

    def stage(text):
        PROGRESS.info(f"export {Path(run).name}: {text} ({time.perf_counter() - t0:.0f} s)")

    stage(f"collecting {calib_vectors} gate input vectors for calibration")
    calib = collect_gate_inputs(model, valid, cfg.bptt, calib_vectors)
    stage("quantising the gate layers")
    per_gate = []
    for l, (gate, x) in enumerate(zip(model.lstm.gates, calib)):
        meta = {"lstm_layer": l, "gate_order": "i,f,g,o", "input": "[x; h]", "hidden": cfg.hidden}
        per_gate.append(gate_layers(f"lstm.l{l}.gates", gate, x, meta))
    layers = [layer for chain in per_gate for layer in chain]
    report = {"run": str(Path(run).name), "method": cfg.method, "ratio": cfg.ratio, "cmr": cfg.cmr,
              "hidden": cfg.hidden, "epoch": ckpt.get("epoch"), "lstm_compression": totals(layers)}
    from doping import int_lstm

    stage("calibrating the integer LSTM cell")
    cells = int_lstm.calibrate(model, per_gate, valid[: CELL_CALIBRATION_CHUNKS * cfg.bptt], cfg.bptt)
    if evaluate_test:
        test = batchify(corpus.test, cfg.eval_batch)
        stage(f"test perplexity 1/3: float ({len(corpus.test):,} tokens)")
        report["test_ppl_float"] = evaluate(model, test, cfg.bptt)
        stage("test perplexity 2/3: every gate mat-vec through the golden model (the longest stage)")
        report["test_ppl_golden_int8"] = evaluate_quantised(model, per_gate, test, cfg.bptt)
        stage("test perplexity 3/3: the whole integer LSTM")
        report["test_ppl_int_lstm"] = int_lstm.evaluate(model, cells, test, cfg.bptt)
        log(f"test perplexity: float {report['test_ppl_float']:.2f}, int8 gate mat-vecs through the golden model "
            f"{report['test_ppl_golden_int8']:.2f}, the whole integer LSTM {report['test_ppl_int_lstm']:.2f}")
    write_pack(out, layers, provenance=report, lstm=cells)
    return report


def gate_layers(name: str, gate, x: np.ndarray, meta: dict) -> list[QuantLayer]:
    """The pack layer(s) of one trained gate module, calibrated on its real inputs ``x``."""
    from doping.synth import dense_layer

    if isinstance(gate, PrunedLinear):
        return [quantise_layer(name, None, None, *overlay_csr(gate), x, meta=meta)[0]]
    if isinstance(gate, DKPLinear):
        return [quantise_layer(name, gate.a.detach().double().numpy(), gate.b.detach().double().numpy(),
                               *overlay_csr(gate), x, meta=meta)[0]]
    if isinstance(gate, LowRankLinear):
        v, u = (t.detach().double().numpy() for t in (gate.v, gate.u))
        first = dense_layer(f"{name}.v", v, x, meta)
        return [first, dense_layer(f"{name}.u", u, x @ v.T, meta, source=first)]
    if isinstance(gate, DenseGate):
        return [dense_layer(name, gate.w.detach().double().numpy(), x, meta)]
    raise DopingError(f"cannot export a {type(gate).__name__} gate (export takes {', '.join(EXPORTABLE)} runs)")


class GoldenGate:
    """Stands in for a gate's step function: quantise [x; h] with the pack's input scale, run the
    golden model through the gate's layers (a chain for LMF), dequantise, add the float bias."""

    def __init__(self, layers: list[QuantLayer], bias: torch.Tensor | None):
        self.layers, self.bias = layers, bias
        self.y_scale = layers[-1].scales()["y"]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        xq = quantise_tensor(v.detach().double().numpy(), self.layers[0].x_scale)
        y = golden.forward_chain(self.layers, {self.layers[0].name: xq})[self.layers[-1].name]
        y = torch.from_numpy(y.astype(np.float32) * np.float32(self.y_scale))
        return y if self.bias is None else y + self.bias


@torch.no_grad()
def evaluate_quantised(model, per_gate: list[list[QuantLayer]], data: torch.Tensor, bptt: int) -> float:
    """Perplexity with every gate mat-vec computed by the golden model on int8 inputs (a forward
    hook on each gate replaces its float output); ``per_gate``: each gate's layers."""
    golden_gates = [GoldenGate(layers, gate.bias.detach() if gate.bias is not None else None)
                    for gate, layers in zip(model.lstm.gates, per_gate)]
    return evaluate_with_gate_hooks(model, data, bptt, lambda l, inp, out: golden_gates[l](inp))
