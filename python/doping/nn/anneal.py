"""Overlay annealing: gradual magnitude pruning (Zhu & Gupta 2017) of every masked tensor.

Between ``start`` and ``end`` optimiser steps, every ``every`` steps, each module with a
``mask`` and a ``target_nnz`` keeps the ``k(t)`` largest-magnitude entries still alive, where
``k(t) = target + (total - target) * (1 - (t - start) / (end - start))**3``. From ``end`` on, k is
exactly ``target``. Masks only shrink: a pruned entry never returns, and ``enforce()`` zeroes
pruned entries in the parameter itself after every optimiser step.

The annealer also drives co-matrix regularisation (CMR) by ``cmr_scale`` on every module with
a ``cmr_p``: "fixed" keeps the full probability for the whole run; "ramp" raises it with the
fraction of the overlay pruned so far, ``1 - (1 - (t - start)/(end - start))**3`` (0 while S is
still dense, 1 at the target), and switches CMR off once annealing has ended; "fall" keeps the full
probability until annealing starts, lowers it linearly in time to 0 at its end and keeps it off
after (the model is pushed onto A kron B while S is large, and ends trained on A kron B + S).
"""

from __future__ import annotations

import torch
from torch import nn


CMR_SCHEDULES = ("fixed", "ramp", "fall")


def masked_modules(model: nn.Module):
    return [m for m in model.modules() if getattr(m, "mask", None) is not None and getattr(m, "target_nnz", None) is not None]


class OverlayAnnealer:
    """Drives every masked module of ``model`` to its ``target_nnz`` between steps ``start`` and ``end``."""

    def __init__(self, model: nn.Module, start: int, end: int, every: int = 1, cmr_schedule: str = "fixed"):
        if not (0 <= start <= end) or every < 1:
            raise ValueError(f"annealing needs 0 <= start <= end and every >= 1, got {start}, {end}, {every}")
        if cmr_schedule not in CMR_SCHEDULES:
            raise ValueError(f"cmr schedule must be one of {', '.join(CMR_SCHEDULES)}, got {cmr_schedule!r}")
        self.modules = masked_modules(model)
        self.cmr_modules = [m for m in model.modules() if getattr(m, "cmr_p", 0) > 0]
        self.start, self.end, self.every = int(start), int(end), int(every)
        self.cmr_schedule = cmr_schedule

    def progress(self, step: int) -> float:
        """Fraction of the way from the dense overlay to the target sparsity at ``step`` (0..1)."""
        if step >= self.end:
            return 1.0
        frac = max(0.0, (step - self.start) / max(1, self.end - self.start))
        return 1.0 - (1.0 - frac) ** 3

    def cmr_scale(self, step: int) -> float:
        if self.cmr_schedule == "fixed":
            return 1.0
        if step >= self.end:
            return 0.0
        if self.cmr_schedule == "fall":
            return 1.0 - max(0.0, (step - self.start) / max(1, self.end - self.start))
        return self.progress(step)

    def keep(self, module, step: int) -> int:
        total = module.mask.numel()
        if step >= self.end:
            return module.target_nnz
        frac = max(0.0, (step - self.start) / max(1, self.end - self.start))
        return module.target_nnz + round((total - module.target_nnz) * (1.0 - frac) ** 3)

    def due(self, step: int) -> bool:
        return step >= self.start and ((step - self.start) % self.every == 0 or step >= self.end)

    @torch.no_grad()
    def step(self, step: int) -> None:
        """Prune to the schedule's level at optimiser step ``step`` and set the CMR probability
        (call before the step's forward)."""
        scale = self.cmr_scale(step)
        for m in self.cmr_modules:
            m.cmr_scale = scale
        if not self.due(step):
            return
        for m in self.modules:
            k = min(self.keep(m, step), int(m.mask.sum()))
            if k == int(m.mask.sum()):
                continue
            score = m.prunable().detach().abs().masked_fill(~m.mask, -1.0).flatten()
            idx = torch.topk(score, k, sorted=False).indices
            mask = torch.zeros_like(m.mask).flatten()
            mask[idx] = True
            m.mask.copy_(mask.view_as(m.mask))
        self.enforce()

    @torch.no_grad()
    def enforce(self) -> None:
        """Zero the pruned entries of every masked parameter (after each optimiser step)."""
        for m in self.modules:
            m.prunable().mul_(m.mask)

    def nnz(self) -> int:
        return sum(int(m.mask.sum()) for m in self.modules)

    def done(self, step: int) -> bool:
        return all(int(m.mask.sum()) == m.target_nnz for m in self.modules) and step >= self.end
