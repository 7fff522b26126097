"""Word-level LSTM language model whose LSTM gate matrices are compressed (Zaremba et al. layout:
embedding -> dropout -> 2-layer LSTM -> dropout -> softmax). Only the LSTM gate matrices are
compressed and counted, as in the seed (embedding and softmax excluded)."""

from __future__ import annotations

from torch import nn

from doping.compression import VALUE_BITS, index_bits, sparse_bits
from doping.nn.dkp import DKPLinear
from doping.nn.lstm import DopedLSTM
from doping.nn.structured import HMDLinear, PrunedLinear, make_gate


class LanguageModel(nn.Module):
    def __init__(self, vocab_size, hidden_size=200, num_layers=2, dropout=0.0, method="dense", ratio=1.0,
                 cmr="none", cmr_p=0.0, init_scale=0.1, gate_options: dict | None = None):
        super().__init__()
        self.method, self.ratio = method, ratio
        options = dict(gate_options or {}, cmr=cmr, cmr_p=cmr_p)
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.drop = nn.Dropout(dropout)
        self.lstm = DopedLSTM(hidden_size, hidden_size, num_layers, dropout=dropout,
                              gate_factory=lambda i, o, b: make_gate(method, i, o, ratio, bias=b, **options))
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.init_scale = init_scale
        self.reset_parameters()

    def reset_parameters(self):
        from doping.nn.structured import DenseGate

        s = self.init_scale
        for gate in self.lstm.gates:  # structured gates keep their own variance-matched init
            if isinstance(gate, DenseGate):
                nn.init.uniform_(gate.w, -s, s)
            if gate.bias is not None:
                nn.init.uniform_(gate.bias, -s, s)
        nn.init.uniform_(self.embed.weight, -s, s)
        nn.init.uniform_(self.decoder.weight, -s, s)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens, hidden=None):
        out, hidden = self.lstm(self.drop(self.embed(tokens)), hidden)
        return self.decoder(self.drop(out)), hidden

    def lstm_accounting(self) -> dict:
        """Parameters and stored bits of the LSTM gate matrices (biases excluded): dense vs
        compressed; for doped gates also the Kronecker share of the parameters and the overlay
        density (nonzeros / m*n)."""
        dense = sum(g.in_features * g.out_features for g in self.lstm.gates)
        params = sum(g.n_params() for g in self.lstm.gates)
        bits = sum(gate_stored_bits(g) for g in self.lstm.gates)
        out = {"dense_params": dense, "params": params, "param_ratio": dense / params,
               "stored_bits": bits, "bit_ratio": dense * VALUE_BITS / bits}
        doped = [g for g in self.lstm.gates if getattr(g, "s", None) is not None]
        if doped:
            nnz = sum(int(g.mask.sum()) for g in doped)
            out["overlay_density"] = nnz / sum(g.in_features * g.out_features for g in doped)
            out["kp_share"] = 1.0 - nnz / sum(g.n_params() for g in doped)
        elif self.method in ("kp", "kp_sum"):
            out["kp_share"] = 1.0
        return out


def gate_stored_bits(g, value_bits: int = VALUE_BITS) -> int:
    """Bits a gate matrix is stored in: values at ``value_bits``, sparse parts as CSR (column
    indices and row pointers, ``compression.sparse_bits``), HMD's dense row indices."""
    m, n = g.out_features, g.in_features
    if isinstance(g, DKPLinear):
        (m1, n1), (m2, n2) = g.factor_shapes
        nnz = int(g.mask.sum()) if g.s is not None else 0
        return (m1 * n1 + m2 * n2) * value_bits + (sparse_bits(m, n, nnz, value_bits) if g.s is not None else 0)
    if isinstance(g, PrunedLinear):
        return sparse_bits(m, n, g.n_params(), value_bits)
    if isinstance(g, HMDLinear):
        return g.n_params() * value_bits + g.dense_rows * index_bits(m)
    return g.n_params() * value_bits
