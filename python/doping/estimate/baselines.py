"""Workloads and the baselines priced on the same tables.

``dkp`` and ``kp`` run on the generated accelerator and use its exact cycle model. ``dense``,
``prune`` and ``lmf`` are not generated as RTL: they are priced as the same R x C int8 array (and,
for pruning, the same L gather lanes) at ideal utilisation, with the same SRAM/DRAM and MAC
tables. That favours the baselines, which is the safe side for a comparison.
"""

from __future__ import annotations

import math
from dataclasses import replace

from doping.compression import largest_factor_shapes_within
from doping.config import AccelConfig, bits_for, ceil_div
from doping.errors import DopingError
from doping.estimate import tables
from doping.estimate.model import clock_mhz, estimate, logic_area_um2
from doping.synth import synth_layer

METHODS = ("dkp", "kp", "dense", "prune", "lmf")


def fit_config(base: AccelConfig, layer) -> AccelConfig:
    """``base`` with buffer capacities grown (to powers of two) until ``layer`` fits: each capacity
    to the layer's own need (the intermediate for the layer's association order only), then only
    the capacity whose bank still overflows is doubled."""
    from doping.hw.loader import lane_entries

    (m1, n1), (m2, n2) = layer.factor_shapes
    p2 = lambda v: 1 << bits_for(v)  # noqa: E731
    need = dict(max_m=layer.m, max_n=layer.n, max_factor=max(m1 * n1, m2 * n2),
                max_intermediate=m1 * n2 if layer.order == "AX" else n1 * m2)
    grown = {k: max(getattr(base, k), p2(v)) for k, v in need.items()}
    # the overlay: each lane's bank holds its entries and an end word, in a power-of-two depth;
    # size the capacity to exactly that (not the total rounded up, which can double every bank)
    longest = max(len(e) for e in lane_entries(layer, base)) + 1
    grown["max_nnz"] = max(base.max_nnz, base.lanes * p2(longest) - base.lanes)
    cfg = replace(base, **grown)
    for _ in range(64):
        short = cfg.shortfalls(layer)
        if not short:
            return cfg
        grow = {field for *_, field in short}
        cfg = replace(cfg, **{f: getattr(cfg, f) * 2 for f in grow})
    cfg.check(layer)
    return cfg


def _kp_budget_shapes(m, n, ratio):
    return largest_factor_shapes_within(m, n, math.floor(m * n / ratio))  # as the trained KP baseline


def workload(m: int, n: int, ratio: float, method: str, seed: int = 0):
    if method not in METHODS:
        raise DopingError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dkp":
        return synth_layer((m, n), ratio, seed=seed)
    if method == "kp":
        shapes = _kp_budget_shapes(m, n, ratio)
        kp = shapes[0][0] * shapes[0][1] + shapes[1][0] * shapes[1][1]
        return synth_layer((m, n), m * n / kp, seed=seed, factor_shapes=shapes)
    return None


def _ideal(cfg: AccelConfig, m, n, macs_array, macs_gather, weight_bytes, extra_sram_bits, index_reads=0):
    """Ideal-utilisation pricing of a baseline on the same array, lanes and tables."""
    e_scale, a_scale = tables.node_scale(cfg.tech_nm)
    on_chip_bits = sum(cfg.sram_bits().values())
    cycles = ceil_div(macs_array, cfg.rows * cfg.cols) + ceil_div(macs_gather, cfg.lanes) + n + m
    weights_on_chip = weight_bytes * 8 + extra_sram_bits <= on_chip_bits
    energy = {"array_macs": macs_array * tables.MAC_INT8_PJ, "gather_macs": macs_gather * tables.MAC_INT8_PJ}
    words64 = ceil_div(weight_bytes, 8)
    if weights_on_chip:
        energy["sram_weights"] = words64 * tables.sram_read_pj(weight_bytes, 64)
        energy["dram_weights"] = 0.0
        sram_bits = weight_bytes * 8 + extra_sram_bits + (m * 32 + n * 8)
    else:
        energy["sram_weights"] = 0.0
        energy["dram_weights"] = words64 * tables.DRAM_64B_PJ
        sram_bits = extra_sram_bits + m * 32 + n * 8
    energy["sram_indices"] = index_reads * tables.sram_read_pj(max(extra_sram_bits // 8, 1), 16)
    energy["sram_activations"] = (n + m) * tables.sram_read_pj((n + 4 * m), 32)
    energy["requant"] = m * (tables.MULT_INT32_PJ + tables.ADD_INT32_PJ)
    energy = {k: v * e_scale for k, v in energy.items()}
    area = {"sram": sram_bits * tables.SRAM_UM2_PER_BIT * a_scale / 1e6,
            "logic": logic_area_um2(cfg) * a_scale / 1e6}
    seconds = cycles / (clock_mhz(cfg) * 1e6)
    total = sum(energy.values())
    return {"cycles": cycles, "energy_pj": total, "area_mm2": sum(area.values()),
            "power_mw": total * 1e-12 / seconds * 1e3, "latency_us": seconds * 1e6,
            "sram_bits": {"total": sram_bits}, "weights_on_chip": weights_on_chip,
            "breakdown": {"energy_pj": energy, "area_mm2": area}}


def price(m: int, n: int, ratio: float, method: str, base: AccelConfig, seed: int = 0) -> dict:
    """Cycles, SRAM, energy, area and power of one (m x n, ratio, method) point."""
    layer = workload(m, n, ratio, method, seed)
    if layer is not None:
        cfg = fit_config(base, layer)
        r = estimate(layer, cfg)
        r["method"], r["ratio"] = method, ratio
        r["params"] = layer.a.size + layer.b.size + layer.nnz
        return r
    budget = math.floor(m * n / ratio)
    if method == "dense":
        r = _ideal(base, m, n, m * n, 0, m * n, 0)
        params = m * n
    elif method == "prune":
        nnz = budget
        idx_bits = nnz * bits_for(n) + (m + 1) * bits_for(nnz + 1)
        r = _ideal(base, m, n, 0, nnz, nnz, idx_bits, index_reads=nnz)
        params = nnz
    else:  # lmf
        rank = budget // (m + n)
        if rank < 1:
            raise DopingError(f"ratio {ratio:g} leaves no rank for a {m}x{n} low-rank factorisation")
        r = _ideal(base, m, n, rank * (m + n), 0, rank * (m + n), 0)
        params = rank * (m + n)
    r.update(method=method, ratio=ratio, params=params)
    return r
