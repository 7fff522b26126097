"""DKP and baseline gate structures against plain dense torch arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from doping.nn import DKPLinear, kron_matvec, make_gate, nearest_kronecker
from doping.nn.structured import HMDLinear, LowRankLinear, PrunedLinear

torch.set_default_dtype(torch.float64)


@pytest.mark.parametrize("shapes", [((1, 1), (1, 1)), ((2, 3), (4, 5)), ((6, 2), (1, 7)), ((3, 3), (3, 3))])
@pytest.mark.parametrize("lead", [(5,), (4, 3)])
def test_dkp_equals_linear_forward_and_grads(shapes, lead):
    (m1, n1), (m2, n2) = shapes
    m, n = m1 * m2, n1 * n2
    torch.manual_seed(0)
    dkp = DKPLinear(n, m, shapes)
    with torch.no_grad():
        dkp.prunable().normal_()
        dkp.mask.copy_(torch.rand(m, n) < 0.5)
    ref = nn.Linear(n, m)
    with torch.no_grad():
        ref.weight.copy_(torch.kron(dkp.a, dkp.b) + dkp.prunable() * dkp.mask)
        ref.bias.copy_(dkp.bias)
    x = torch.randn(*lead, n, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = dkp(x), ref(x2)
    torch.testing.assert_close(y, y2)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x.grad, x2.grad)
    # dL/dW of the dense layer, chained through W = kron(A, B) + S*mask
    gw = ref.weight.grad
    torch.testing.assert_close(dkp.prunable().grad, gw * dkp.mask)
    r = gw.reshape(m1, m2, n1, n2)
    torch.testing.assert_close(dkp.a.grad, torch.einsum("ikjl,kl->ij", r, dkp.b))
    torch.testing.assert_close(dkp.b.grad, torch.einsum("ikjl,ij->kl", r, dkp.a))
    torch.testing.assert_close(dkp.bias.grad, ref.bias.grad)


def test_kron_matvec_never_needs_the_kron():
    a, b, x = torch.randn(3, 4), torch.randn(5, 2), torch.randn(7, 8)
    torch.testing.assert_close(kron_matvec(a, b, x), x @ torch.kron(a, b).T)


def test_nearest_kronecker_recovers_exact_kron_and_residual_init():
    a, b = torch.randn(4, 3), torch.randn(5, 2)
    a2, b2 = nearest_kronecker(torch.kron(a, b), ((4, 3), (5, 2)))
    torch.testing.assert_close(torch.kron(a2, b2), torch.kron(a, b))
    w = torch.randn(20, 6)
    layer = DKPLinear(6, 20, ((4, 3), (5, 2)))
    layer.init_from_dense(w, "residual")
    torch.testing.assert_close(layer.weight(), w)
    layer.init_from_dense(w, "zero")
    assert layer.s.abs().sum() == 0
    # the nearest KP is at least as close as any other KP we can make
    r = w - torch.kron(layer.a, layer.b)
    assert r.norm() <= (w - torch.kron(torch.randn(4, 3), torch.randn(5, 2))).norm()


def test_cmr_modes_only_in_training():
    torch.manual_seed(1)
    for mode in ("dropout", "path"):
        layer = DKPLinear(6, 20, ((4, 3), (5, 2)), cmr=mode, cmr_p=0.5)
        with torch.no_grad():
            layer.prunable().normal_()
        x = torch.randn(64, 6)
        layer.eval()
        y_eval = layer(x)
        torch.testing.assert_close(y_eval, x @ layer.weight().T + layer.bias)
        layer.train()
        y_train = layer(x)
        assert not torch.allclose(y_train, y_eval)
        kp = kron_matvec(layer.a, layer.b, x) + layer.bias
        o_train, o_eval = y_train - kp, y_eval - kp
        if mode == "path":  # whole rows of the overlay output dropped or doubled
            ratio = o_train / o_eval
            assert torch.all((ratio.abs() < 1e-9).all(1) | ((ratio - 2).abs() < 1e-9).all(1))


@pytest.mark.parametrize("method", ["dense", "dkp", "kp", "kp_sum", "prune", "lmf", "hmd"])
def test_make_gate_meets_budget(method):
    g = make_gate(method, 400, 800, 25.0)
    assert g.weight().shape == (800, 400)
    target = 800 * 400 // 25
    if method == "dense":
        assert g.n_params() == 320000
    elif method in ("dkp", "prune"):
        assert g.target_nnz + (g.n_params() - int(g.mask.sum())) == target  # at the end of annealing
    elif method == "kp":  # the Kronecker factorisation with the most parameters within budget
        assert g.n_params() == 10_032 <= target
    elif method == "kp_sum":  # 11 products of the rule's 32x16 and 25x25 factors (1,137 each)
        assert g.terms == 11 and g.n_params() == 12_507 <= target
    else:
        assert target * 0.9 <= g.n_params() <= target


def test_svd_inits_are_best_low_rank():
    w = torch.randn(30, 20)
    lr = LowRankLinear(20, 30, 5)
    lr.init_from_dense(w)
    u, s, vh = torch.linalg.svd(w)
    torch.testing.assert_close((w - lr.weight()).norm(), s[5:].norm())
    h = HMDLinear(20, 30, 10, 4)
    h.init_from_dense(w)
    torch.testing.assert_close(h.weight()[h.dense_idx], w[h.dense_idx])
    p = PrunedLinear(20, 30, 100)
    p.init_from_dense(w)
    torch.testing.assert_close(p.weight(), w)


@pytest.mark.parametrize("method", ["dkp", "prune"])
def test_masked_weights_are_a_parametrization_and_old_state_dicts_load(method):
    from torch.nn.utils import parametrize

    torch.manual_seed(5)
    gate = make_gate(method, 6, 20, 2.0)
    name = "s" if method == "dkp" else "w"
    with torch.no_grad():
        gate.prunable().normal_()
        gate.mask.copy_(torch.rand(20, 6) < 0.5)
    assert parametrize.is_parametrized(gate, name)
    torch.testing.assert_close(getattr(gate, name), gate.prunable() * gate.mask)  # reads masked
    assert gate.n_params() >= int(gate.mask.sum())
    # a state dict from before the parametrization: the values under ``name``, the mask as "mask"
    old = {k: v for k, v in gate.state_dict().items() if not k.startswith("parametrizations.")}
    old |= {name: gate.prunable().detach().clone(), "mask": gate.mask.clone()}
    fresh = make_gate(method, 6, 20, 2.0)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.mask, gate.mask) and torch.equal(fresh.prunable(), gate.prunable())
    torch.testing.assert_close(fresh.weight(), gate.weight())
