"""Word-level LSTM language model whose LSTM gate matrices are compressed (Zaremba et al. layout:
embedding -> dropout -> 2-layer LSTM -> dropout -> softmax). Only the LSTM gate matrices are
compressed and counted, as in the seed (embedding and softmax excluded)."""

from __future__ import annotations

from torch import nn

from doping.nn.lstm import DopedLSTM
from doping.nn.structured import make_gate


class LanguageModel(nn.Module):
    def __init__(self, vocab_size, hidden_size=200, num_layers=2, dropout=0.0, method="dense", ratio=1.0,
                 cmr="none", cmr_p=0.0, init_scale=0.1):
        super().__init__()
        self.method, self.ratio = method, ratio
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.drop = nn.Dropout(dropout)
        self.lstm = DopedLSTM(hidden_size, hidden_size, num_layers, dropout=dropout,
                              gate_factory=lambda i, o, b: make_gate(method, i, o, ratio, bias=b, cmr=cmr, cmr_p=cmr_p))
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
        """Parameters of the LSTM gate matrices (biases excluded): dense vs compressed."""
        dense = sum(g.in_features * g.out_features for g in self.lstm.gates)
        params = sum(g.n_params() for g in self.lstm.gates)
        return {"dense_params": dense, "params": params, "param_ratio": dense / params}
