"""A multi-layer LSTM whose per-layer gate matrix ``[W_ih | W_hh]`` (4H x (I+H)) is any gate
structure (dense, DKP, pruned, LMF, HMD, KP), with the calling convention of ``torch.nn.LSTM``.

Gate order along the 4H rows is torch's: input, forget, cell, output.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class DopedLSTM(nn.Module):
    """``output, (h_n, c_n) = lstm(input, (h_0, c_0))`` like ``torch.nn.LSTM``.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout: as ``torch.nn.LSTM``.
        gate_factory: ``f(in_features, out_features, bias) -> module`` building layer l's gate
            matrix acting on ``[x_t; h_{t-1}]``; default a dense gate.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 gate_factory: Callable | None = None):
        super().__init__()
        from doping.nn.structured import DenseGate

        factory = gate_factory or (lambda i, o, b: DenseGate(i, o, b))
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout = batch_first, float(dropout)
        self.gates = nn.ModuleList(
            factory((input_size if l == 0 else hidden_size) + hidden_size, 4 * hidden_size, bias)
            for l in range(num_layers)
        )

    @torch.no_grad()
    def load_from_torch_lstm(self, ref: nn.LSTM, overlay_init: str = "residual") -> None:
        """Initialise every gate from a ``torch.nn.LSTM``'s weights: W = [W_ih | W_hh], b = b_ih + b_hh."""
        for l, gate in enumerate(self.gates):
            w = torch.cat([getattr(ref, f"weight_ih_l{l}"), getattr(ref, f"weight_hh_l{l}")], dim=1)
            if hasattr(gate, "s"):
                gate.init_from_dense(w, overlay_init)
            else:
                gate.init_from_dense(w)
            if gate.bias is not None:
                gate.bias.copy_(getattr(ref, f"bias_ih_l{l}") + getattr(ref, f"bias_hh_l{l}"))

    def forward(self, input: torch.Tensor, hx=None):
        x = input.transpose(0, 1) if self.batch_first else input
        steps, batch = x.shape[0], x.shape[1]
        if hx is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        h_n, c_n = [], []
        for l, gate in enumerate(self.gates):
            h, c = hx[0][l], hx[1][l]
            step = gate.step_fn() if hasattr(gate, "step_fn") else gate
            outs = []
            for t in range(steps):
                g = step(torch.cat([x[t], h], dim=-1))
                i, f, gg, o = g.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs)
            h_n.append(h)
            c_n.append(c)
            if self.dropout > 0 and self.training and l < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, (torch.stack(h_n), torch.stack(c_n))

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}")
