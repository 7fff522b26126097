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
from torch.nn.utils import parametrize

from doping.compression import (choose_factor_shapes, factor_shapes_for_share, largest_factor_shapes_within,
                                overlay_budget)
from doping.errors import DopingError
from doping.nn.dkp import DKPLinear, kron_matvec, nearest_kronecker_terms
from doping.nn.masked import mask_of, mask_parameter, raw

METHODS = ("dense", "dkp", "kp", "kp_sum", "prune", "lmf", "hmd")


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

    def fused_weights(self, batch: int, device=None):
        """The materialised W for a whole sequence (see ``DKPLinear.fused_weights``)."""
        return [(None, self.weight())]


class DenseGate(_Biased):
    """Unconstrained W (m x n): the dense baseline."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__(out_features, in_features, bias)
        self.w = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def _stored(self) -> nn.Parameter:
        """The parameter holding W's values (a pruned W's unmasked values)."""
        return self.w

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self._stored(), -bound, bound)
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        self._stored().copy_(w)

    def weight(self):
        return self.w

    def forward(self, x):
        return self._add_bias(nn.functional.linear(x, self.w))

    def n_params(self):
        return self.w.numel()


class PrunedLinear(DenseGate):
    """W under a magnitude-pruning mask annealed to ``target_nnz`` nonzeros: ``w`` reads as the
    masked W (``doping.nn.masked``), so ``DenseGate``'s forward and weight apply unchanged."""

    def __init__(self, in_features, out_features, target_nnz, bias=True):
        super().__init__(in_features, out_features, bias)
        mask_parameter(self, "w")
        self.target_nnz = int(target_nnz)

    @property
    def mask(self) -> torch.Tensor:
        return mask_of(self, "w")

    def _stored(self) -> nn.Parameter:
        return raw(self, "w") if parametrize.is_parametrized(self, "w") else self.w

    def prunable(self):
        return self._stored()

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
    """Hybrid matrix decomposition (Thakker et al.): ``dense_rows`` rows of W unconstrained, the
    others U V of rank r.

    The dense rows are spread evenly over the ``gates`` row blocks (the four LSTM gates i, f, g, o)
    and, within each block, are the rows with the largest L2 norm of the dense matrix given to
    ``init_from_dense`` (the most important rows); from a random init they are evenly spaced.
    ``dense_idx``/``low_idx`` are the rows of each part; the output is in W's row order.
    """

    def __init__(self, in_features, out_features, dense_rows, rank, bias=True, gates=4):
        super().__init__(out_features, in_features, bias)
        self.gates = gates if out_features % gates == 0 else 1
        self.dense_rows, self.rank = int(dense_rows), int(rank)
        self.top = nn.Parameter(torch.empty(self.dense_rows, in_features))
        self.low = LowRankLinear(in_features, out_features - self.dense_rows, rank, bias=False)
        self.register_buffer("dense_idx", torch.zeros(self.dense_rows, dtype=torch.long))
        self.register_buffer("low_idx", torch.zeros(out_features - self.dense_rows, dtype=torch.long))
        self.register_buffer("order", torch.zeros(out_features, dtype=torch.long))
        self._choose_rows(torch.zeros(out_features))
        self.reset_parameters()

    def _per_gate(self) -> list[int]:
        k, g = divmod(self.dense_rows, self.gates)
        return [k + (1 if j < g else 0) for j in range(self.gates)]

    @torch.no_grad()
    def _choose_rows(self, importance: torch.Tensor) -> None:
        block = self.out_features // self.gates
        chosen = []
        for j, k in enumerate(self._per_gate()):
            score = importance[j * block:(j + 1) * block]
            if bool((score == score[0]).all()):  # no importance known: evenly spaced rows
                rows = torch.linspace(0, block - 1, k).round().long() if k else torch.zeros(0, dtype=torch.long)
            else:
                rows = torch.topk(score, k).indices
            chosen.append(torch.sort(rows).values + j * block)
        dense = torch.cat(chosen)
        is_dense = torch.zeros(self.out_features, dtype=torch.bool)
        is_dense[dense] = True
        self.dense_idx.copy_(dense)
        self.low_idx.copy_(torch.arange(self.out_features)[~is_dense])
        self.order.copy_(torch.argsort(torch.cat([self.dense_idx, self.low_idx])))

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.top, -bound, bound)
        self.low.reset_parameters()
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        self._choose_rows(w.detach().norm(dim=1))
        self.top.copy_(w[self.dense_idx])
        self.low.init_from_dense(w[self.low_idx])

    def weight(self):
        return torch.cat([self.top, self.low.weight()], dim=0)[self.order]

    def forward(self, x):
        y = torch.cat([nn.functional.linear(x, self.top), self.low(x)], dim=-1)
        return self._add_bias(y.index_select(-1, self.order))

    def n_params(self):
        return self.top.numel() + self.low.n_params()

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, dense_rows={self.dense_rows} "
                f"(over {self.gates} gates), rank={self.rank}")


class KronSumLinear(_Biased):
    """W = sum_k kron(A_k, B_k), ``terms`` Kronecker products of the same factor shapes (the
    "sum of Kronecker products" baseline: more terms buy rank where one product has too little)."""

    def __init__(self, in_features, out_features, factor_shapes, terms, bias=True):
        super().__init__(out_features, in_features, bias)
        (m1, n1), (m2, n2) = factor_shapes
        if m1 * m2 != out_features or n1 * n2 != in_features:
            raise ValueError(f"factor shapes {factor_shapes} do not give a {out_features}x{in_features} matrix")
        self.factor_shapes, self.terms = ((m1, n1), (m2, n2)), int(terms)
        self.a = nn.Parameter(torch.empty(terms, m1, n1))
        self.b = nn.Parameter(torch.empty(terms, m2, n2))
        self.reset_parameters()

    def reset_parameters(self):
        std = (1.0 / (3 * self.in_features * self.terms)) ** 0.25
        nn.init.normal_(self.a, 0.0, std)
        nn.init.normal_(self.b, 0.0, std)
        self._reset_bias()

    @torch.no_grad()
    def init_from_dense(self, w):
        a, b = nearest_kronecker_terms(w, self.factor_shapes, self.terms)
        self.a.copy_(a)
        self.b.copy_(b)

    def weight(self):
        return sum(torch.kron(self.a[k], self.b[k]) for k in range(self.terms))

    def forward(self, x):
        return self._add_bias(sum(kron_matvec(self.a[k], self.b[k], x) for k in range(self.terms)))

    def n_params(self):
        return self.a.numel() + self.b.numel()

    def extra_repr(self):
        (m1, n1), (m2, n2) = self.factor_shapes
        return f"in_features={self.in_features}, out_features={self.out_features}, terms={self.terms}, A={m1}x{n1}, B={m2}x{n2}"


def make_gate(method: str, in_features: int, out_features: int, ratio: float = 1.0, *, bias=True,
              factor_shapes=None, kp_share: float = 0.0, hmd_split: float = 0.5, cmr="none",
              cmr_p=0.0) -> nn.Module:
    """A gate matrix of ``method`` whose parameter count meets compression ``ratio``.

    Budget P = floor(m*n / ratio). dkp: factors given, or chosen for a Kronecker share of P
    (``kp_share`` > 0, ``factor_shapes_for_share``), or by the minimal-parameter rule
    (``choose_factor_shapes``), and an overlay annealed to P - factor parameters; kp: the
    factorisation with most parameters <= P; kp_sum: as many Kronecker products of the rule's
    shapes (or the given ones) as fit P; prune: P nonzeros; lmf: rank floor(P / (m + n)); hmd:
    a ``hmd_split`` fraction of P as dense rows spread over the four gates, the rest as the rank
    that fits the lower rows.
    """
    m, n = out_features, in_features
    if method not in METHODS:
        raise DopingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dense":
        return DenseGate(n, m, bias)
    budget = math.floor(m * n / ratio)
    if method == "dkp":
        shapes = factor_shapes or (factor_shapes_for_share(m, n, ratio, kp_share) if kp_share > 0
                                   else choose_factor_shapes(m, n))
        layer = DKPLinear(n, m, shapes, bias=bias, overlay=True, cmr=cmr, cmr_p=cmr_p)
        layer.target_nnz = overlay_budget(m, n, ratio, shapes)
        return layer
    if method == "kp":
        return DKPLinear(n, m, factor_shapes or largest_factor_shapes_within(m, n, budget), bias=bias, overlay=False)
    if method == "kp_sum":
        shapes = factor_shapes or choose_factor_shapes(m, n)
        (m1, n1), (m2, n2) = shapes
        terms = budget // (m1 * n1 + m2 * n2)
        if terms < 1:
            raise DopingError(f"ratio {ratio:g} leaves no room for one Kronecker product of {m1}x{n1} and {m2}x{n2}")
        return KronSumLinear(n, m, shapes, terms, bias)
    if method == "prune":
        return PrunedLinear(n, m, budget, bias)
    if method == "lmf":
        rank = budget // (m + n)
        if rank < 1:
            raise DopingError(f"ratio {ratio:g} leaves no rank for a {m}x{n} low-rank factorisation")
        return LowRankLinear(n, m, rank, bias)
    if not 0.0 <= hmd_split < 1.0:
        raise DopingError(f"hmd split must be in [0, 1), got {hmd_split}")
    rows = min(m - 1, int(budget * hmd_split) // n)
    rank = (budget - rows * n) // (m - rows + n)
    if rank < 1:
        raise DopingError(f"ratio {ratio:g} leaves no rank for the lower rows of a {m}x{n} HMD")
    return HMDLinear(n, m, rows, rank, bias)
