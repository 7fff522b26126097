"""A multi-layer LSTM whose per-layer gate matrix ``[W_ih | W_hh]`` (4H x (I+H)) is any gate
structure (dense, DKP, pruned, LMF, HMD, KP), with the calling convention of ``torch.nn.LSTM``.

Gate order along the 4H rows is torch's: input, forget, cell, output.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize


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
        #: Call each gate module once per time step (so its forward hooks see every gate input
        #: and can replace every output, as export's calibration and golden evaluation do)
        #: instead of the fused kernel.
        self.per_step_calls = False
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
        batch = x.shape[1]
        if hx is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        h_n, c_n = [], []
        for l, gate in enumerate(self.gates):
            groups = None
            if hasattr(gate, "fused_weights") and not self.per_step_calls:
                groups = gate.fused_weights(batch, x.device)
            if groups is None:
                step = gate if self.per_step_calls or not hasattr(gate, "step_fn") else gate.step_fn()
                with parametrize.cached():  # masked weights computed once for the sequence
                    x, h, c = self._layer_by_step(step, x, hx[0][l], hx[1][l])
            else:
                x, h, c = self._layer_fused(gate, groups, x, hx[0][l], hx[1][l])
            h_n.append(h)
            c_n.append(c)
            if self.dropout > 0 and self.training and l < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, (torch.stack(h_n), torch.stack(c_n))

    @staticmethod
    def _layer_by_step(step, x, h, c):
        """One layer, one time step at a time through ``step`` (the gate module or its cached
        ``step_fn``: any structure, any CMR)."""
        outs = []
        for t in range(x.shape[0]):
            g = step(torch.cat([x[t], h], dim=-1))
            i, f, gg, o = g.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs), h, c

    def _layer_fused(self, gate, groups, x, h, c):
        """One layer through torch's fused LSTM kernel (cuDNN on CUDA) with the gate's materialised
        W = [W_ih | W_hh] — the same function as ``_layer_by_step``, without a Python loop over time.
        ``groups`` splits the batch when rows see different weights (per-sequence CMR)."""
        n_in = x.shape[-1]
        bias = getattr(gate, "bias", None)
        if len(groups) == 1 and groups[0][0] is None:
            return self._fused_call(groups[0][1], bias, n_in, x, h, c)
        out = x.new_empty(x.shape[0], x.shape[1], self.hidden_size)
        h_out, c_out = torch.empty_like(h), torch.empty_like(c)
        for idx, w in groups:
            if idx.numel() == 0:
                continue
            y, hg, cg = self._fused_call(w, bias, n_in, x[:, idx], h[idx], c[idx])
            out = out.index_copy(1, idx, y)
            h_out = h_out.index_copy(0, idx, hg)
            c_out = c_out.index_copy(0, idx, cg)
        return out, h_out, c_out

    @staticmethod
    def _fused_call(w, bias, n_in, x, h, c):
        params = [w[:, :n_in].contiguous(), w[:, n_in:].contiguous()]
        if bias is not None:
            params += [bias, torch.zeros_like(bias)]
        y, hn, cn = torch.lstm(x, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()), params,
                               bias is not None, 1, 0.0, torch.is_grad_enabled(), False, False)
        return y, hn[0], cn[0]

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}")
