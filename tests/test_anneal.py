"""Overlay annealing reaches exactly the target nnz, and pruned entries stay zero."""

from __future__ import annotations

import torch

from doping.nn import make_gate
from doping.nn.anneal import OverlayAnnealer


def test_schedule_reaches_target_and_pruned_stay_zero():
    torch.manual_seed(0)
    model = torch.nn.ModuleList([make_gate("dkp", 40, 60, 10.0), make_gate("prune", 40, 60, 10.0)])
    with torch.no_grad():
        model[0].prunable().normal_()
    ann = OverlayAnnealer(model, start=2, end=20, every=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    history, prev_masks = [], None
    for step in range(30):
        ann.step(step)
        masks = [m.mask.clone() for m in ann.modules]
        if prev_masks is not None:  # masks only shrink
            assert all(bool((new & ~old).sum() == 0) for new, old in zip(masks, prev_masks))
        prev_masks = masks
        x = torch.randn(8, 40)
        loss = sum((g(x) ** 2).mean() for g in model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ann.enforce()
        for m in ann.modules:
            assert m.prunable()[~m.mask].abs().sum() == 0
        history.append(ann.nnz())
    assert [int(m.mask.sum()) for m in ann.modules] == [m.target_nnz for m in ann.modules]
    assert ann.done(29)
    assert history == sorted(history, reverse=True)  # monotone
    assert history[0] == 2 * 2400 and history[-1] == sum(m.target_nnz for m in ann.modules)
    # gradual: cubic, so more than two distinct levels on the way
    assert len(set(history)) > 4


def test_keeps_largest_magnitudes():
    g = make_gate("prune", 10, 10, 4.0)
    with torch.no_grad():
        g.prunable().copy_(torch.arange(100.0).view(10, 10) - 50)
    ann = OverlayAnnealer(torch.nn.ModuleList([g]), 0, 0)
    ann.step(0)
    kept = g.prunable()[g.mask].abs()
    assert int(g.mask.sum()) == 25 and kept.min() >= g.prunable()[~g.mask].abs().max()
    assert torch.equal(g.w, g.prunable() * g.mask)  # w reads masked
