"""Calibrate the integer LSTM of a trained run (golden/lstm.py, numerics.md §9) and measure its
perplexity: embedding and decoder stay on the host in float; the whole LSTM stack — gate
mat-vecs, bias, activations, cell state and the fed-back h — runs in the golden integer model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from doping.golden import QuantLayer, Requant
from doping.golden.lstm import CELL_CLIP, PRE_CLIP, LSTMLayerQuant, quantise_bias, run_sequence, sigmoid_lut, tanh_lut
from doping.quantize import quantise_tensor
from doping.train import evaluate_with_gate_hooks


@torch.no_grad()
def float_statistics(model, data: torch.Tensor, bptt: int) -> list[dict]:
    """Per LSTM layer, the largest |pre-activation| (gate output with bias) and |cell state| seen
    when the float model runs ``data`` (forward hooks on the gate modules; c rebuilt from the
    gate outputs in time order)."""
    seen = [[] for _ in model.lstm.gates]
    evaluate_with_gate_hooks(model, data, bptt, lambda l, inp, out: seen[l].append(out.double().numpy().copy()))
    stats = []
    for steps in seen:
        pre = np.stack(steps)  # (T, batch, 4H), in time order across the chunks (hidden carried)
        i, f, g, _ = np.split(pre, 4, axis=-1)
        c, cmax = np.zeros_like(i[0]), 0.0
        for t in range(len(pre)):
            c = c / (1 + np.exp(-f[t])) + np.tanh(g[t]) / (1 + np.exp(-i[t]))
            cmax = max(cmax, float(np.abs(c).max()))
        stats.append({"pre_max": float(np.abs(pre).max()), "cell_max": cmax})
    return stats


def calibrate(model, per_gate: list[list[QuantLayer]], data: torch.Tensor, bptt: int) -> list[LSTMLayerQuant]:
    """The integer LSTM of ``model`` with its gate layers ``per_gate`` (from export), its ranges
    measured on ``data`` (validation)."""
    stats = float_statistics(model, data, bptt)
    layers = []
    for l, (gates, st) in enumerate(zip(per_gate, stats)):
        gate = model.lstm.gates[l]
        acc_scale = gates[-1].scales()["acc"]
        s_p = min(st["pre_max"], PRE_CLIP) / 127
        s_c = min(st["cell_max"], CELL_CLIP) / 127
        bias = gate.bias.detach().double().numpy() if gate.bias is not None else np.zeros(gates[-1].m)
        s_self = gates[0].x_scale
        s_next = per_gate[l + 1][0].x_scale if l + 1 < len(per_gate) else s_self
        layers.append(LSTMLayerQuant(
            gates=gates, hidden=model.lstm.hidden_size,
            bias=quantise_bias(bias, acc_scale),
            pre_rq=Requant.from_real(acc_scale / s_p), cell_rq=Requant.from_real(2.0 ** -15 / s_c),
            h_rq=Requant.from_real(2.0 ** -30 / s_self), out_rq=Requant.from_real(2.0 ** -30 / s_next),
            sigmoid=sigmoid_lut(s_p), tanh=tanh_lut(s_p), tanh_c=tanh_lut(s_c)))
    return layers


def pre_scale(layer: LSTMLayerQuant) -> float:
    """Real units per LSB of the int8 pre-activation."""
    return layer.gates[-1].scales()["acc"] / layer.pre_rq.real


@torch.no_grad()
def evaluate(model, layers: list[LSTMLayerQuant], data: torch.Tensor, bptt: int) -> float:
    """Perplexity with the embedding quantised to the first layer's input scale, the LSTM stack in
    the golden integer model (state carried across chunks, as the float evaluation does) and the
    decoder in float on the dequantised last h."""
    model.eval()
    s_in, s_out = layers[0].gates[0].x_scale, 2.0 ** -30 / layers[-1].out_rq.real
    state, total, count = None, 0.0, 0
    for i in range(0, data.shape[0] - 1, bptt):
        seq = min(bptt, data.shape[0] - 1 - i)
        x, y = data[i: i + seq], data[i + 1: i + 1 + seq]
        emb = model.embed(x).double().numpy()
        out, state = run_sequence(layers, quantise_tensor(emb, s_in), state)
        h = torch.from_numpy(out.astype(np.float64) * s_out).to(model.decoder.weight.dtype)
        logits = model.decoder(h)
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                   reduction="sum"))
        count += y.numel()
    return math.exp(total / count)
