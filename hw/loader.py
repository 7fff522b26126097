"""Host side of the accelerator's load stream: a QuantLayer -> the words that place it in the
on-chip memories and registers. The one place that defines the memory layout (docs/hardware.md);
the cocotb driver, the Amaranth tests and the estimator all use it.

Load word: ``sel`` (4 bits: which memory or the register file), ``addr`` (bank in the high bits,
offset in the low ``bits_for(bank depth)`` bits) and ``data`` (32 bits).
"""

from __future__ import annotations

from doping.config import AccelConfig, bits_for, ceil_div
from doping.golden import QuantLayer

SEL_REG, SEL_A, SEL_B, SEL_OVERLAY = 0, 1, 2, 3

#: Register file: index -> name. All are 32-bit, written before the first vector.
REGS = ("order", "m1", "n1", "m2", "n2", "n", "m", "kb_stride", "t_mult", "t_shift", "ov_mult", "ov_shift",
        "y_mult", "y_shift")
REG_INDEX = {name: i for i, name in enumerate(REGS)}


def lane_entries(layer: QuantLayer, lanes: int) -> list[list[tuple[int, int, int]]]:
    """Overlay entries per gather lane: lane l owns output rows i with i % lanes == l, in order;
    each row contributes its nonzeros as (col, value, last), an empty row one (0, 0, 1)."""
    out = [[] for _ in range(lanes)]
    rp, cols, vals = layer.rowptr, layer.cols, layer.vals
    for i in range(layer.m):
        lo, hi = int(rp[i]), int(rp[i + 1])
        lane = out[i % lanes]
        if lo == hi:
            lane.append((0, 0, 1))
        else:
            lane.extend((int(cols[p]), int(vals[p]), int(p == hi - 1)) for p in range(lo, hi))
    return out


def overlay_word(col: int, val: int, last: int, end: int, col_bits: int) -> int:
    return col | ((val & 0xFF) << col_bits) | (last << (col_bits + 8)) | (end << (col_bits + 9))


def register_values(layer: QuantLayer, cfg: AccelConfig) -> dict[str, int]:
    (m1, n1), (m2, n2) = layer.factor_shapes
    return {
        "order": 0 if layer.order == "AX" else 1, "m1": m1, "n1": n1, "m2": m2, "n2": n2, "n": layer.n,
        "m": layer.m, "kb_stride": ceil_div(m2, cfg.cols),
        "t_mult": layer.t_rq.multiplier, "t_shift": layer.t_rq.shift,
        "ov_mult": layer.ov_rq.multiplier, "ov_shift": layer.ov_rq.shift,
        "y_mult": layer.y_rq.multiplier, "y_shift": layer.y_rq.shift,
    }


def load_words(layer: QuantLayer, cfg: AccelConfig) -> list[tuple[int, int, int]]:
    """(sel, addr, data) words that load ``layer``; checks the layer fits ``cfg`` first."""
    cfg.check(layer)
    mem = cfg.memories
    (m1, n1), (m2, n2) = layer.factor_shapes
    words = [(SEL_REG, REG_INDEX[k], v) for k, v in register_values(layer, cfg).items()]
    a_bits, b_bits, o_bits = (bits_for(mem[k]["depth"]) for k in ("a", "b", "overlay"))
    for r in range(m1):
        for k in range(n1):
            words.append((SEL_A, ((r % cfg.rows) << a_bits) | ((r // cfg.rows) * n1 + k), int(layer.a[r, k]) & 0xFF))
    for j in range(m2):
        for k in range(n2):
            words.append((SEL_B, ((j % cfg.cols) << b_bits) | ((j // cfg.cols) * n2 + k), int(layer.b[j, k]) & 0xFF))
    col_bits = bits_for(cfg.max_n)
    for lane, entries in enumerate(lane_entries(layer, cfg.lanes)):
        for p, (col, val, last) in enumerate(entries + [(0, 0, 0)]):
            end = int(p == len(entries))
            words.append((SEL_OVERLAY, (lane << o_bits) | p, overlay_word(col, val, last, end, col_bits)))
    return words
