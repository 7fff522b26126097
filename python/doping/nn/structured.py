"""Gate-matrix structures for the baselines, all at a parameter budget, and ``make_gate``.

Every structure exposes ``forward(x)`` on (..., in_features), ``weight()`` (materialised W,
for tests and export), ``n_params()`` (parameters of W, bias excluded) and
``init_from_dense(w)``. Structures with a sparse part carry a boolean ``mask`` buffer, the
``prunable()`` tensor it masks and a ``target_nnz`` that overlay annealing drives the mask to.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from doping.compression import choose_factor_shapes, largest_factor_shapes_within, overlay_budget
from doping.errors import DopingError
from doping.nn.dkp import DKPLinear

METHODS = ("dense", "dkp", "kp", "prune", "lmf", "hmd")


class _Biased(nn.Module):
    def __init__(self, out_features, in_features, bias):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def _reset_bias(self):
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def _add_bias(self, y):
        return y if self.bias is None else y + self.bias


class DenseGate(_Biased):
    """Unconstrained W (m x n): the dense baseline."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__(out_features, in_features, bias)
        self.w = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.w, -bound, bound)
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        self.w.copy_(w)

    def weight(self):
        return self.w

    def forward(self, x):
        return self._add_bias(nn.functional.linear(x, self.w))

    def n_params(self):
        return self.w.numel()


class PrunedLinear(DenseGate):
    """W under a magnitude-pruning mask annealed to ``target_nnz`` nonzeros."""

    def __init__(self, in_features, out_features, target_nnz, bias=True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features, dtype=torch.bool))
        self.target_nnz = int(target_nnz)

    def prunable(self):
        return self.w

    def weight(self):
        return self.w * self.mask

    def forward(self, x):
        return self.step_fn()(x)

    def step_fn(self):
        w = self.weight()
        return lambda x: self._add_bias(nn.functional.linear(x, w))

    def n_params(self):
        return int(self.mask.sum())

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.n_params()}, target_nnz={self.target_nnz}"


class LowRankLinear(_Biased):
    """W = U V with U (m x r), V (r x n): low-rank matrix factorisation (LMF)."""

    def __init__(self, in_features, out_features, rank, bias=True):
        super().__init__(out_features, in_features, bias)
        self.rank = int(rank)
        self.u = nn.Parameter(torch.empty(out_features, rank))
        self.v = nn.Parameter(torch.empty(rank, in_features))
        self.reset_parameters()

    def reset_parameters(self):
        std = (1.0 / (3 * self.in_features * self.rank)) ** 0.25
        nn.init.normal_(self.u, 0.0, std)
        nn.init.normal_(self.v, 0.0, std)
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
        root = torch.sqrt(s[: self.rank])
        self.u.copy_((u[:, : self.rank] * root).to(w.dtype))
        self.v.copy_((root[:, None] * vh[: self.rank]).to(w.dtype))

    def weight(self):
        return self.u @ self.v

    def forward(self, x):
        return self._add_bias(nn.functional.linear(nn.functional.linear(x, self.v), self.u))

    def n_params(self):
        return self.u.numel() + self.v.numel()

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


class HMDLinear(_Biased):
    """Hybrid matrix decomposition: the first ``dense_rows`` rows unconstrained, the rest U V of rank r."""

    def __init__(self, in_features, out_features, dense_rows, rank, bias=True):
        super().__init__(out_features, in_features, bias)
        self.dense_rows, self.rank = int(dense_rows), int(rank)
        self.top = nn.Parameter(torch.empty(self.dense_rows, in_features))
        self.low = LowRankLinear(in_features, out_features - self.dense_rows, rank, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.top, -bound, bound)
        self.low.reset_parameters()
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        self.top.copy_(w[: self.dense_rows])
        self.low.init_from_dense(w[self.dense_rows:])

    def weight(self):
        return torch.cat([self.top, self.low.weight()], dim=0)

    def forward(self, x):
        return self._add_bias(torch.cat([nn.functional.linear(x, self.top), self.low(x)], dim=-1))

    def n_params(self):
        return self.top.numel() + self.low.n_params()

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, dense_rows={self.dense_rows}, rank={self.rank}"


def make_gate(method: str, in_features: int, out_features: int, ratio: float = 1.0, *, bias=True,
              factor_shapes=None, cmr="none", cmr_p=0.0) -> nn.Module:
    """A gate matrix of ``method`` whose parameter count meets compression ``ratio``.

    Budget P = floor(m*n / ratio). dkp: factors by ``choose_factor_shapes`` (or given) and an
    overlay annealed to P - factor parameters; kp: the factorisation with most parameters <= P;
    prune: P nonzeros; lmf: rank floor(P / (m + n)); hmd: about half of P as dense upper rows,
    the rest as the rank that fits the lower rows.
    """
    m, n = out_features, in_features
    if method not in METHODS:
        raise DopingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dense":
        return DenseGate(n, m, bias)
    budget = math.floor(m * n / ratio)
    if method == "dkp":
        shapes = factor_shapes or choose_factor_shapes(m, n)
        layer = DKPLinear(n, m, shapes, bias=bias, overlay=True, cmr=cmr, cmr_p=cmr_p)
        layer.target_nnz = overlay_budget(m, n, ratio, shapes)
        return layer
    if method == "kp":
        return DKPLinear(n, m, factor_shapes or largest_factor_shapes_within(m, n, budget), bias=bias, overlay=False)
    if method == "prune":
        return PrunedLinear(n, m, budget, bias)
    if method == "lmf":
        rank = budget // (m + n)
        if rank < 1:
            raise DopingError(f"ratio {ratio:g} leaves no rank for a {m}x{n} low-rank factorisation")
        return LowRankLinear(n, m, rank, bias)
    rows = min(m - 1, (budget // 2) // n)
    rank = (budget - rows * n) // (m - rows + n)
    if rank < 1:
        raise DopingError(f"ratio {ratio:g} leaves no rank for the lower rows of a {m}x{n} HMD")
    return HMDLinear(n, m, rows, rank, bias)
