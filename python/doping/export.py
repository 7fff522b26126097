"""Export a trained DKP (or KP) run to a model pack, and evaluate the quantised model through
the golden model's integer arithmetic.

Each LSTM layer's gate matrix ``[W_ih | W_hh]`` (4H x (I+H), acting on ``[x; h]``) becomes one
pack layer ``lstm.l<i>.gates``. Input, intermediate and output scales are calibrated on the
gate inputs the float model sees on the validation split. The gate bias, the nonlinearities,
embedding and softmax stay on the host in float and are not part of the pack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from doping import golden
from doping.data import batchify, load_corpus
from doping.errors import DopingError
from doping.golden import QuantLayer
from doping.nn.dkp import DKPLinear
from doping.pack import totals, write_pack
from doping.quantize import quantise_layer, quantise_tensor
from doping.train import evaluate, load_run_model


def overlay_csr(gate: DKPLinear):
    """The masked overlay as CSR by row (rowptr, cols, float values)."""
    if gate.s is None:
        return np.zeros(gate.out_features + 1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    s = (gate.s * gate.mask).detach().double().numpy()
    mask = gate.mask.numpy()
    rows, cols = np.nonzero(mask)
    rowptr = np.zeros(gate.out_features + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=gate.out_features), out=rowptr[1:])
    return rowptr, cols.astype(np.int64), s[rows, cols]


@torch.no_grad()
def collect_gate_inputs(model, data: torch.Tensor, bptt: int, vectors: int, seed: int = 0) -> list[np.ndarray]:
    """Up to ``vectors`` random gate input vectors ``[x; h]`` per LSTM layer from running ``data``
    (forward hooks on the gate modules, called once per time step)."""
    seen = [[] for _ in model.lstm.gates]
    hooks = [gate.register_forward_hook(lambda mod, inp, out, l=l: seen[l].append(inp[0].double().numpy().copy()))
             for l, gate in enumerate(model.lstm.gates)]
    model.lstm.per_step_calls = True
    try:
        evaluate(model, data, bptt)
    finally:
        model.lstm.per_step_calls = False
        for h in hooks:
            h.remove()
    rng = np.random.default_rng(seed)
    out = []
    for chunks in seen:
        allv = np.concatenate(chunks)
        out.append(allv[rng.choice(len(allv), size=min(vectors, len(allv)), replace=False)])
    return out


def export_run(run: str | Path, out: str | Path, calib_vectors: int = 4096, evaluate_test: bool = True,
               log=print) -> dict:
    """Write the pack of ``run`` to ``out``; return a report with float and quantised perplexities."""
    model, cfg, ckpt = load_run_model(run)
    if cfg.method not in ("dkp", "kp"):
        raise DopingError(f"run {run} was trained with method {cfg.method!r}; only dkp and kp runs have Kronecker "
                          "factors to export")
    corpus = load_corpus(cfg.data)
    valid = batchify(corpus.valid, cfg.eval_batch)
    calib = collect_gate_inputs(model, valid, cfg.bptt, calib_vectors)
    layers = []
    for l, (gate, x) in enumerate(zip(model.lstm.gates, calib)):
        rowptr, cols, vals = overlay_csr(gate)
        meta = {"lstm_layer": l, "gate_order": "i,f,g,o", "input": "[x; h]", "hidden": cfg.hidden}
        layer, _ = quantise_layer(f"lstm.l{l}.gates", gate.a.detach().double().numpy(),
                                  gate.b.detach().double().numpy(), rowptr, cols, vals, x, meta=meta)
        layers.append(layer)
    report = {"run": str(Path(run).name), "method": cfg.method, "ratio": cfg.ratio, "cmr": cfg.cmr,
              "hidden": cfg.hidden, "epoch": ckpt.get("epoch"), "lstm_compression": totals(layers)}
    if evaluate_test:
        test = batchify(corpus.test, cfg.eval_batch)
        report["test_ppl_float"] = evaluate(model, test, cfg.bptt)
        report["test_ppl_golden_int8"] = evaluate_quantised(model, layers, test, cfg.bptt)
        log(f"test perplexity: float {report['test_ppl_float']:.2f}, int8 through the golden model "
            f"{report['test_ppl_golden_int8']:.2f}")
    write_pack(out, layers, provenance=report)
    return report


class GoldenGate:
    """Stands in for a gate's step function: quantise [x; h] with the pack's input scale, run the
    golden model, dequantise, add the float bias."""

    def __init__(self, layer: QuantLayer, bias: torch.Tensor | None):
        self.layer, self.bias = layer, bias
        self.y_scale = layer.scales()["y"]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        xq = quantise_tensor(v.detach().double().numpy(), self.layer.x_scale)
        y = torch.from_numpy(golden.forward(self.layer, xq).astype(np.float32) * np.float32(self.y_scale))
        return y if self.bias is None else y + self.bias


@torch.no_grad()
def evaluate_quantised(model, layers: list[QuantLayer], data: torch.Tensor, bptt: int) -> float:
    """Perplexity with every gate mat-vec computed by ``golden.forward`` on int8 inputs (a forward
    hook on each gate replaces its float output)."""
    gates = model.lstm.gates
    hooks = []
    for gate, layer in zip(gates, layers):
        gg = GoldenGate(layer, gate.bias.detach() if gate.bias is not None else None)
        hooks.append(gate.register_forward_hook(lambda mod, inp, out, gg=gg: gg(inp[0])))
    model.lstm.per_step_calls = True
    try:
        return evaluate(model, data, bptt)
    finally:
        model.lstm.per_step_calls = False
        for h in hooks:
            h.remove()
