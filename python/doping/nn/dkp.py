"""The doped Kronecker product (DKP) linear layer: ``W = kron(A, B) + S``.

``kron(A, B) @ x`` is computed as ``A @ X @ B^T`` on ``X = x.reshape(n1, n2)``; kron(A, B) is never
materialised. S is a dense parameter under a binary mask (a ``doping.nn.masked`` parametrization:
``layer.s`` reads as the masked overlay) that overlay annealing (``doping.nn.anneal``) shrinks
until it holds the target number of nonzeros.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from doping.nn.masked import mask_of, mask_parameter, raw


def kron_order(a_shape, b_shape) -> str:
    """The cheaper association of ``A X B^T``: "AX" (T = A X first: m1*n1*n2 + m1*n2*m2 MACs) or
    "XB" (U = X B^T first: n1*n2*m2 + m1*n1*m2 MACs); ties go to "AX"."""
    (m1, n1), (m2, n2) = a_shape, b_shape
    return "AX" if m1 * n1 * n2 + m1 * n2 * m2 <= n1 * n2 * m2 + m1 * n1 * m2 else "XB"


def kron_matvec(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x @ kron(a, b).T`` for ``x`` of shape (..., n1*n2): returns (..., m1*m2), in the
    association order with fewer MACs (``kron_order``)."""
    (m1, n1), (m2, n2) = a.shape, b.shape
    xm = x.reshape(*x.shape[:-1], n1, n2)
    if kron_order(a.shape, b.shape) == "AX":
        y = torch.matmul(torch.matmul(a, xm), b.transpose(0, 1))
    else:
        y = torch.matmul(a, torch.matmul(xm, b.transpose(0, 1)))
    return y.reshape(*x.shape[:-1], m1 * m2)


def _rearranged(w: torch.Tensor, factor_shapes) -> torch.Tensor:
    """Van Loan-Pitsianis rearrangement: W (m1*m2 x n1*n2) as R (m1*n1 x m2*n2) with
    R[(i,j),(k,l)] = W[i*m2+k, j*n2+l], so that kron(A, B) maps to vec(A) vec(B)^T."""
    (m1, n1), (m2, n2) = factor_shapes
    return w.detach().double().reshape(m1, m2, n1, n2).permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)


def nearest_kronecker_terms(w: torch.Tensor, factor_shapes, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best sum of ``terms`` Kronecker products in Frobenius norm: the rank-``terms`` SVD of
    the rearranged W. Returns A (terms, m1, n1) and B (terms, m2, n2)."""
    (m1, n1), (m2, n2) = factor_shapes
    u, s, vh = torch.linalg.svd(_rearranged(w, factor_shapes), full_matrices=False)
    root = torch.sqrt(s[:terms])
    a = (u[:, :terms] * root).T.reshape(terms, m1, n1)
    b = (vh[:terms] * root[:, None]).reshape(terms, m2, n2)
    return a.to(w.dtype), b.to(w.dtype)


def nearest_kronecker(w: torch.Tensor, factor_shapes) -> tuple[torch.Tensor, torch.Tensor]:
    """Van Loan-Pitsianis nearest Kronecker product: A, B minimising ||W - kron(A, B)||_F."""
    a, b = nearest_kronecker_terms(w, factor_shapes, 1)
    return a[0], b[0]


CMR_MODES = ("none", "dropout", "path", "seq", "seq-unscaled", "dropconnect")
#: Modes that drop the overlay path of a sample for a whole sequence, and the factor the kept
#: samples' S is scaled by (``1 / (1 - p)`` keeps S x's expectation; unscaled keeps W itself).
SEQ_MODES = {"seq": True, "seq-unscaled": False}


class DKPLinear(nn.Module):
    """``y = kron(A, B) x + CMR(S x) + bias`` for inputs of shape (..., in_features).

    Args:
        in_features, out_features: n and m of W (m x n).
        factor_shapes: ((m1, n1), (m2, n2)) with m1*m2 = m, n1*n2 = n.
        bias: learnable bias of size m.
        overlay: keep the sparse overlay S (False gives Kronecker-only, the KP baseline).
        cmr: co-matrix regularisation during training (``CMR_MODES``): "none"; "dropout" (inverted
            dropout on the overlay path's output S x, elementwise, every time step); "path" (the
            overlay path of a sample dropped at each time step, rescaled); "seq" (variational: the
            overlay path of a sample dropped for a whole sequence, rescaled); "seq-unscaled" (the
            same, not rescaled: a sample sees A kron B + S or A kron B alone, so that the Kronecker
            part must carry the model on its own while S stays large); "dropconnect"
            (DropConnect: overlay entries dropped, one mask per forward pass, rescaled).
        cmr_p: the CMR probability; the probability applied is ``cmr_p * cmr_scale``, where
            ``cmr_scale`` (1.0 unless the annealer's CMR schedule sets it) ramps it with annealing.
    """

    def __init__(self, in_features, out_features, factor_shapes, bias=True, overlay=True, cmr="none", cmr_p=0.0):
        super().__init__()
        (m1, n1), (m2, n2) = factor_shapes
        if m1 * m2 != out_features or n1 * n2 != in_features:
            raise ValueError(f"factor shapes {factor_shapes} do not give a {out_features}x{in_features} matrix")
        if cmr not in CMR_MODES:
            raise ValueError(f"cmr must be one of {', '.join(CMR_MODES)}, got {cmr!r}")
        self.in_features, self.out_features = in_features, out_features
        self.factor_shapes = ((m1, n1), (m2, n2))
        self.cmr, self.cmr_p = cmr, float(cmr_p)
        self.cmr_scale = 1.0
        #: True while a Kronecker-first warm-up runs with the overlay path off (S kept, unused).
        self.overlay_off = False
        self.a = nn.Parameter(torch.empty(m1, n1))
        self.b = nn.Parameter(torch.empty(m2, n2))
        if overlay:
            self.s = nn.Parameter(torch.zeros(out_features, in_features))
            mask_parameter(self, "s")
        else:
            self.register_parameter("s", None)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        #: Overlay nonzeros that annealing prunes S down to (None: no annealing).
        self.target_nnz = None
        self.reset_parameters()

    @property
    def has_overlay(self) -> bool:
        return parametrize.is_parametrized(self, "s")

    @property
    def mask(self) -> torch.Tensor | None:
        """The overlay's bool mask (None for Kronecker-only)."""
        return mask_of(self, "s") if self.has_overlay else None

    def reset_parameters(self) -> None:
        # Entries of kron(A, B) then have the variance of nn.Linear's uniform(+-1/sqrt(n)) init.
        std = (1.0 / (3 * self.in_features)) ** 0.25
        nn.init.normal_(self.a, 0.0, std)
        nn.init.normal_(self.b, 0.0, std)
        if self.has_overlay:
            nn.init.zeros_(raw(self, "s"))
            self.mask.fill_(True)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def init_from_dense(self, w: torch.Tensor, overlay_init: str = "residual") -> None:
        """Factors from the nearest Kronecker product of ``w``; S = the residual or zero."""
        a, b = nearest_kronecker(w, self.factor_shapes)
        self.a.copy_(a)
        self.b.copy_(b)
        if self.has_overlay:
            if overlay_init == "residual":
                raw(self, "s").copy_(w - torch.kron(a, b))
            elif overlay_init == "zero":
                raw(self, "s").zero_()
            else:
                raise ValueError(f"overlay_init must be 'residual' or 'zero', got {overlay_init!r}")
            self.mask.fill_(True)

    @torch.no_grad()
    def rebase_overlay(self, w: torch.Tensor) -> None:
        """S = ``w`` - kron(A, B), dense again (the end of a Kronecker-first warm-up): the layer
        computes ``w`` exactly, with the factors as trained."""
        raw(self, "s").copy_(w - torch.kron(self.a, self.b))
        self.mask.fill_(True)

    @torch.no_grad()
    def kp_energy_share(self) -> float:
        """||kron(A, B)||^2 / ||W||^2: how much of the matrix the Kronecker part holds."""
        kp = float((self.a.double() ** 2).sum() * (self.b.double() ** 2).sum())
        return kp / max(float((self.weight().double() ** 2).sum()), 1e-30)

    def prunable(self) -> torch.Tensor:
        """The tensor whose magnitudes overlay annealing ranks: S's stored values."""
        return raw(self, "s")

    def overlay(self) -> torch.Tensor | None:
        """The masked overlay S (dense tensor), or None for Kronecker-only (or while it is off)."""
        return self.s if self.has_overlay and not self.overlay_off else None

    def weight(self) -> torch.Tensor:
        """The effective W = kron(A, B) + S, materialised (for tests and export only)."""
        w = torch.kron(self.a, self.b)
        return w + self.s if self.has_overlay else w

    @property
    def cmr_active_p(self) -> float:
        """The CMR probability applied now (0 in eval mode or without an overlay)."""
        if not self.training or not self.has_overlay or self.cmr == "none":
            return 0.0
        return self.cmr_p * self.cmr_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step_fn()(x)

    def step_fn(self):
        """``forward`` with the masked overlay computed once, for many calls with the same
        weights (the time steps of an LSTM sequence)."""
        overlay = self.overlay()
        if overlay is not None and self.cmr == "dropconnect" and self.cmr_active_p > 0:
            overlay = self._dropconnect(overlay)
        return lambda x: self._compute(x, overlay)

    def _dropconnect(self, overlay: torch.Tensor) -> torch.Tensor:
        p = self.cmr_active_p
        return overlay * (torch.rand_like(overlay) >= p) / (1.0 - p)

    def fused_weights(self, batch: int, device=None):
        """The materialised W for a whole sequence, as ``[(batch_index or None, W), ...]`` (one W per
        group of batch rows), or None when the CMR mode varies W per time step (then the LSTM runs
        step by step through ``step_fn``). Used by ``DopedLSTM`` for torch's fused LSTM kernel."""
        p = self.cmr_active_p
        kron = torch.kron(self.a, self.b)
        overlay = self.overlay()
        if overlay is None:
            return [(None, kron)]
        if p == 0:
            return [(None, kron + overlay)]
        if self.cmr == "dropconnect":
            return [(None, kron + self._dropconnect(overlay))]
        if self.cmr in SEQ_MODES:
            keep = torch.rand(batch, device=device) >= p
            kept, dropped = keep.nonzero().flatten(), (~keep).nonzero().flatten()
            return [(kept, kron + overlay / (1.0 - p) if SEQ_MODES[self.cmr] else kron + overlay), (dropped, kron)]
        return None

    def _compute(self, x: torch.Tensor, overlay: torch.Tensor | None) -> torch.Tensor:
        y = kron_matvec(self.a, self.b, x)
        if overlay is not None:
            o = nn.functional.linear(x, overlay)
            p = self.cmr_active_p
            if p > 0:
                if self.cmr == "dropout":
                    o = nn.functional.dropout(o, p, training=True)
                elif self.cmr == "path":
                    keep = torch.rand(*o.shape[:-1], 1, device=o.device) >= p
                    o = o * keep / (1.0 - p)
                elif self.cmr in SEQ_MODES and x.dim() >= 2:
                    # outside an LSTM (no sequence): one draw per sample of the batch
                    keep = torch.rand(*o.shape[:-1], 1, device=o.device) >= p
                    o = o * keep / (1.0 - p) if SEQ_MODES[self.cmr] else o * keep
            y = y + o
        if self.bias is not None:
            y = y + self.bias
        return y

    def n_params(self) -> int:
        """Parameters of the compressed matrix: factor entries plus overlay nonzeros (bias excluded)."""
        (m1, n1), (m2, n2) = self.factor_shapes
        return m1 * n1 + m2 * n2 + (int(self.mask.sum()) if self.has_overlay else 0)

    def extra_repr(self) -> str:
        (m1, n1), (m2, n2) = self.factor_shapes
        nnz = int(self.mask.sum()) if self.has_overlay else "none"
        return (f"in_features={self.in_features}, out_features={self.out_features}, A={m1}x{n1}, B={m2}x{n2}, "
                f"overlay_nnz={nnz}, cmr={self.cmr}, cmr_p={self.cmr_p}, bias={self.bias is not None}")
