"""Compress your own PyTorch model (issue 32): swap its ``nn.Linear`` layers for doped Kronecker
(or pruned, low-rank, Kronecker-only, dense) layers initialised from their trained weights,
fine-tune with the overlay annealed, and export the compressed layers as a model pack that the
generated accelerator runs and the estimator prices.

    import doping.compress as dc
    handle = dc.compress(model, ratio=8, method="dkp")       # in place; returns what it swapped
    annealer = handle.annealer(start=0, end=steps // 2)       # S from dense to its budget
    for step, (x, y) in enumerate(batches):
        annealer.step(step)                                   # before the forward
        loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
        annealer.enforce()                                    # after the optimiser step
    dc.export_pack(model, handle, calib=lambda: model(x_calib), path="mine.dpack")

The accelerator computes each layer's int8 matrix-vector product (W x); the bias, the activation
functions and everything between layers stay on the host, in float.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from doping.errors import DopingError
from doping.nn.anneal import OverlayAnnealer
from doping.nn.structured import make_gate

#: Methods a compressed layer can take and the accelerator can run (``export.EXPORTABLE``).
METHODS = ("dkp", "kp", "prune", "lmf", "dense")


@dataclass
class Compressed:
    """What ``compress`` swapped: module path -> the new layer (each keeps ``in_features``,
    ``out_features`` and a ``bias``), the method and the ratio."""

    layers: dict = field(default_factory=dict)
    method: str = "dkp"
    ratio: float = 1.0

    def annealer(self, start: int, end: int, every: int = 1) -> OverlayAnnealer:
        """The overlay schedule (DKP and pruning): every masked layer from dense at step ``start``
        to its nonzero budget at step ``end``, pruned every ``every`` steps (cubic, Zhu & Gupta)."""
        holder = nn.ModuleList(self.layers.values())
        return OverlayAnnealer(holder, start, end, every)


def compress(model: nn.Module, ratio: float, method: str = "dkp", *, kp_share: float = 0.0,
             include: str | list[str] = "*", min_features: int = 8) -> Compressed:
    """Replace, in place, every ``nn.Linear`` of ``model`` whose module path matches ``include``
    (glob patterns) and whose sides are both >= ``min_features`` by a ``method`` layer meeting
    parameter compression ``ratio`` (``doping.nn.structured.make_gate``; DKP factor shapes by the
    minimal-parameter rule, or for a Kronecker share ``kp_share`` of the budget), initialised
    from the trained weight (DKP: the nearest Kronecker product and S = W - A (x) B, dense until
    annealed; prune: W, pruned by annealing; LMF: truncated SVD) and the same bias."""
    if method not in METHODS:
        raise DopingError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if not ratio >= 1:
        raise DopingError(f"ratio must be >= 1, got {ratio}")
    patterns = [include] if isinstance(include, str) else list(include)
    handle = Compressed(method=method, ratio=float(ratio))
    targets = [(name, mod) for name, mod in model.named_modules()
               if type(mod) is nn.Linear and any(fnmatch.fnmatch(name, p) for p in patterns)
               and min(mod.in_features, mod.out_features) >= min_features]
    if not targets:
        raise DopingError(f"no nn.Linear of the model matches {patterns} with both sides >= {min_features}")
    for name, lin in targets:
        new = make_gate(method, lin.in_features, lin.out_features, 1.0 if method == "dense" else ratio,
                        bias=lin.bias is not None, kp_share=kp_share)
        new.init_from_dense(lin.weight.detach())
        if lin.bias is not None:
            with torch.no_grad():
                new.bias.copy_(lin.bias)
        new.to(lin.weight.device, lin.weight.dtype)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
        handle.layers[name] = new
    return handle


@torch.no_grad()
def export_pack(model: nn.Module, handle: Compressed, calib, path: str | Path, provenance: dict | None = None):
    """Quantise every compressed layer of ``handle`` against the inputs it sees while ``calib()``
    runs the model (e.g. ``lambda: model(x_calib)``; forward hooks record them) and write them to
    the pack ``path``, one pack layer per layer (two, chained, for LMF), named by module path.
    Returns the pack's layers."""
    from doping.export import gate_layers
    from doping.pack import totals, write_pack

    seen: dict[str, list[np.ndarray]] = {name: [] for name in handle.layers}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen[name].append(
        args[0].detach().reshape(-1, args[0].shape[-1]).double().cpu().numpy()))
        for name, m in handle.layers.items()]
    was_training = model.training
    model.eval()
    try:
        calib()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    layers = []
    for name, mod in handle.layers.items():
        if not seen[name]:
            raise DopingError(f"layer {name} saw no input while calib() ran: calibration must run the whole model")
        layers += gate_layers(name, mod, np.concatenate(seen[name]), {"module": name, "method": handle.method})
    write_pack(path, layers, provenance={"method": handle.method, "ratio": handle.ratio,
                                         "compression": totals(layers), **(provenance or {})})
    return layers
