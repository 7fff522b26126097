"""The doped LSTM against torch.nn.LSTM, and the LM's compression accounting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from doping.lm import LanguageModel
from doping.nn import DopedLSTM, make_gate


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("method", ["dense", "dkp"])
def test_doped_lstm_equals_torch_lstm(batch_first, method):
    torch.manual_seed(0)
    ref = nn.LSTM(12, 8, num_layers=2, batch_first=batch_first).double()
    # dkp: factors from the nearest Kronecker product, S = the dense residual -> exactly W
    lstm = DopedLSTM(12, 8, 2, batch_first=batch_first,
                     gate_factory=lambda i, o, b: make_gate(method, i, o, 1.0 if method == "dense" else 2.0, bias=b)).double()
    lstm.load_from_torch_lstm(ref)
    x = torch.randn(5, 3, 12, dtype=torch.float64)
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    h0 = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    out, (h, c) = lstm(x, h0)
    rout, (rh, rc) = ref(x, h0)
    torch.testing.assert_close(out, rout)
    torch.testing.assert_close(h, rh)
    torch.testing.assert_close(c, rc)
    out0, _ = lstm(x)
    torch.testing.assert_close(out0, ref(x)[0])


def test_lm_accounting_by_hand():
    # hidden 200: each gate matrix is 800 x 400 = 320,000; two layers = 640,000 dense parameters.
    lm = LanguageModel(50, 200, 2, method="dkp", ratio=25.0)
    g = lm.lstm.gates[0]
    assert g.factor_shapes == ((32, 16), (25, 25))  # 512 + 625 = 1,137 factor parameters
    assert g.target_nnz == 320_000 // 25 - 1_137 == 11_663
    with torch.no_grad():
        for gate in lm.lstm.gates:
            gate.mask.zero_()
            gate.mask.view(-1)[: gate.target_nnz] = True
    acc = lm.lstm_accounting()
    assert acc["dense_params"] == 640_000 and acc["params"] == 2 * 12_800 and acc["param_ratio"] == 25.0
