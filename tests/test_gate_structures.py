"""Issue 10's gate pieces: Kronecker share rule, CMR modes and schedules, HMD rows, sum of
Kronecker products, the kron association order, and the fused LSTM path."""

from __future__ import annotations

import pytest
import torch

from doping.compression import factor_shapes_for_share, parse_factor_shapes
from doping.errors import DopingError
from doping.nn import DKPLinear, DopedLSTM, kron_matvec, make_gate
from doping.nn.anneal import OverlayAnnealer
from doping.nn.dkp import kron_order, nearest_kronecker_terms
from doping.nn.structured import HMDLinear, KronSumLinear


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.75])
def test_share_rule_hits_the_requested_fraction(share):
    m, n, ratio = 800, 400, 25.0
    (m1, n1), (m2, n2) = factor_shapes_for_share(m, n, ratio, share)
    assert m1 * m2 == m and n1 * n2 == n
    budget = m * n // 25
    kp = m1 * n1 + m2 * n2
    assert kp <= budget and abs(kp / budget - share) < 0.05
    g = make_gate("dkp", n, m, ratio, kp_share=share)
    assert g.factor_shapes == ((m1, n1), (m2, n2)) and g.target_nnz == budget - kp


def test_share_rule_and_factor_text_reject_nonsense():
    with pytest.raises(DopingError):
        factor_shapes_for_share(800, 400, 25, 1.5)
    for bad in ("40x20", "40x20,20", "ax2,3x4", "0x20,20x20"):
        with pytest.raises(DopingError):
            parse_factor_shapes(bad)
    assert parse_factor_shapes("40x20,20X20") == ((40, 20), (20, 20))


def test_kron_order_picks_fewer_macs_and_both_orders_agree():
    # 2600x1300 at the rule shapes: X B^T first is 14x fewer MACs than A X first
    assert kron_order((200, 10), (13, 130)) == "XB"
    assert kron_order((13, 130), (200, 10)) == "AX"
    torch.manual_seed(0)
    for a_shape, b_shape in [((6, 2), (3, 5)), ((2, 6), (5, 3))]:
        a, b, x = torch.randn(*a_shape), torch.randn(*b_shape), torch.randn(4, a_shape[1] * b_shape[1])
        torch.testing.assert_close(kron_matvec(a, b, x), x @ torch.kron(a, b).T)


def _doped(mode, p=0.5):
    torch.manual_seed(3)
    layer = DKPLinear(6, 20, ((4, 3), (5, 2)), cmr=mode, cmr_p=p)
    with torch.no_grad():
        layer.prunable().normal_()
    return layer


@pytest.mark.parametrize("mode", ["dropout", "path", "seq", "seq-unscaled", "dropconnect"])
def test_cmr_modes_change_training_only(mode):
    layer = _doped(mode)
    x = torch.randn(64, 6)
    layer.eval()
    ref = x @ layer.weight().T + layer.bias
    torch.testing.assert_close(layer(x), ref)
    assert layer.fused_weights(64)[0][0] is None
    torch.testing.assert_close(layer.fused_weights(64)[0][1], layer.weight())
    layer.train()
    assert not torch.allclose(layer(x), ref)
    groups = layer.fused_weights(64)
    if mode in ("dropout", "path"):
        assert groups is None  # varies per time step: the LSTM runs step by step
    elif mode == "dropconnect":  # overlay entries kept (scaled by 1/(1-p)) or dropped
        (idx, w), = groups
        kept = (w - torch.kron(layer.a, layer.b)) / layer.overlay()
        assert idx is None and torch.all(((kept - 2).abs() < 1e-5) | (kept.abs() < 1e-6))
    else:  # seq: every sample in exactly one group, with the (scaled: seq) or no overlay
        (keep, wk), (drop, wd) = groups
        assert sorted(torch.cat([keep, drop]).tolist()) == list(range(64))
        torch.testing.assert_close(wd, torch.kron(layer.a, layer.b))
        scale = 2 if mode == "seq" else 1
        torch.testing.assert_close(wk, torch.kron(layer.a, layer.b) + scale * layer.overlay())


def test_cmr_schedules_follow_the_annealer():
    layer = _doped("seq", 0.4)
    layer.target_nnz = 30
    model = torch.nn.ModuleList([layer])
    ramp = OverlayAnnealer(model, 10, 110, 10, cmr_schedule="ramp")
    seen = []
    for step in (0, 10, 60, 109, 110, 500):
        ramp.step(step)
        seen.append(layer.cmr_active_p)
    assert seen[0] == seen[1] == 0.0 and 0 < seen[2] < seen[3] < 0.4 and seen[4] == seen[5] == 0.0
    fall = OverlayAnnealer(model, 10, 110, 10, cmr_schedule="fall")
    seen = []
    for step in (0, 10, 60, 109, 110, 500):
        fall.step(step)
        seen.append(layer.cmr_active_p)
    assert seen[0] == seen[1] == 0.4 and seen[2] == pytest.approx(0.2) and 0 < seen[3] < 0.01
    assert seen[4] == seen[5] == 0.0
    fixed = OverlayAnnealer(model, 10, 110, 10, cmr_schedule="fixed")
    for step in (0, 60, 500):
        fixed.step(step)
        assert layer.cmr_active_p == 0.4
    layer.eval()
    assert layer.cmr_active_p == 0.0


def test_hmd_rows_spread_over_gates_by_importance():
    torch.manual_seed(0)
    w = torch.randn(40, 12)
    important = [3, 4, 17, 12, 25, 29, 31, 38]  # two per gate block of 10 rows
    w[important] *= 10
    h = HMDLinear(12, 40, 8, 2)
    h.init_from_dense(w)
    assert sorted(h.dense_idx.tolist()) == sorted(important)
    assert [int(((h.dense_idx >= 10 * j) & (h.dense_idx < 10 * j + 10)).sum()) for j in range(4)] == [2, 2, 2, 2]
    torch.testing.assert_close(h.weight()[h.dense_idx], w[h.dense_idx])
    x = torch.randn(5, 12)
    torch.testing.assert_close(h(x), x @ h.weight().T + h.bias)
    assert h.n_params() == 8 * 12 + 2 * (32 + 12)


def test_kron_sum_is_the_best_sum_of_products():
    torch.manual_seed(0)
    shapes = ((4, 3), (5, 2))
    a, b = torch.randn(3, 4, 3), torch.randn(3, 5, 2)
    w = sum(torch.kron(a[k], b[k]) for k in range(3))
    g = KronSumLinear(6, 20, shapes, 3)
    g.init_from_dense(w)
    torch.testing.assert_close(g.weight(), w, atol=1e-5, rtol=1e-5)  # rank 3 in the rearrangement: exact
    x = torch.randn(7, 6)
    torch.testing.assert_close(g(x), x @ w.T + g.bias, atol=1e-5, rtol=1e-5)
    a1, b1 = nearest_kronecker_terms(w, shapes, 1)
    assert (w - torch.kron(a1[0], b1[0])).norm() > (w - g.weight()).norm()


@pytest.mark.parametrize("method,kw", [("dense", {}), ("dkp", {}), ("dkp", {"cmr": "dropconnect", "cmr_p": 0.3}),
                                       ("dkp", {"cmr": "seq", "cmr_p": 0.3}), ("prune", {}), ("lmf", {}),
                                       ("hmd", {}), ("kp_sum", {})])
def test_fused_lstm_equals_step_by_step(method, kw):
    """The fused kernel path computes the same function (and gradients) as the step loop."""
    torch.manual_seed(1)
    lstm = DopedLSTM(8, 8, 2, gate_factory=lambda i, o, b: make_gate(method, i, o, 2.0, bias=b, **kw)).double()
    for g in lstm.gates:
        if getattr(g, "s", None) is not None:
            with torch.no_grad():
                g.prunable().normal_(0, 0.3)
    x = torch.randn(6, 5, 8, dtype=torch.float64)
    lstm.train()
    torch.manual_seed(7)
    fused, (h1, c1) = lstm(x)
    fused.sum().backward()
    grads = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    # the same per-forward random draws, then every layer step by step with those weights
    torch.manual_seed(7)
    hs, inp = [], x
    for g in lstm.gates:
        groups = g.fused_weights(5)
        w = torch.zeros(5, g.out_features, g.in_features, dtype=torch.float64)
        for idx, wg in groups:
            w[slice(None) if idx is None else idx] = wg
        h = c = torch.zeros(5, 8, dtype=torch.float64)
        seq = []
        for t in range(inp.shape[0]):
            z = torch.einsum("bmn,bn->bm", w, torch.cat([inp[t], h], -1)) + g.bias
            i, f, gg, o = z.chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
            seq.append(h)
        inp = torch.stack(seq)
        hs.append(h)
    torch.testing.assert_close(fused, inp)
    torch.testing.assert_close(h1, torch.stack(hs))
    inp.sum().backward()
    for g0, p in zip(grads, lstm.parameters()):
        torch.testing.assert_close(g0, p.grad)
