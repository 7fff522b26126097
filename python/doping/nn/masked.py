"""A tensor under a boolean mask as a ``torch.nn.utils.parametrize`` parametrization: reading
``module.<name>`` gives the masked tensor, the stored values live in
``module.parametrizations.<name>.original`` and the mask in the parametrization's ``mask`` buffer
(what ``torch.nn.utils.prune`` keeps as ``<name>_orig`` and ``<name>_mask``). Overlay annealing
(``doping.nn.anneal``) shrinks the mask; ``parametrize.cached()`` computes the masked tensor once
for many calls (the time steps of an LSTM sequence).

Writes go to the stored values (``raw``): an in-place write to ``module.<name>`` would change a
computed tensor and be lost.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class Masked(nn.Module):
    """``x * mask``; ``mask`` is a bool buffer of ``shape``, all True (dense) at first."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("mask", torch.ones(shape, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def mask_parameter(module: nn.Module, name: str) -> None:
    """Put ``module.<name>`` under a ``Masked`` parametrization (unsafe: the stored values are the
    parameter as it is, not re-derived through a right inverse). State dicts saved before the
    parametrization (keys ``<name>`` and ``mask``) still load."""
    parametrize.register_parametrization(module, name, Masked(getattr(module, name).shape), unsafe=True)

    def old_keys(mod, state_dict, prefix, *_):
        for old, new in ((name, f"parametrizations.{name}.original"), ("mask", f"parametrizations.{name}.0.mask")):
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)

    module.register_load_state_dict_pre_hook(old_keys)


def raw(module: nn.Module, name: str) -> nn.Parameter:
    """The stored (unmasked) values of masked parameter ``name``: what optimisers update and
    initialisation writes."""
    return module.parametrizations[name].original


def mask_of(module: nn.Module, name: str) -> torch.Tensor:
    """The bool mask buffer of masked parameter ``name``."""
    return module.parametrizations[name][0].mask
