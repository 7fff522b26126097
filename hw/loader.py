"""Host side of the accelerator's load stream: a QuantLayer -> the (sel, addr, data) words that
place it in the on-chip memories and registers, in the memory map, register file and word format
of ``doping.arch`` (docs/hardware.md). The RTL tests, the cocotb driver, ``AccelConfig.check``
and the estimator all take a layer's placement from here.

Overlay (sparse S) layout, EIE-style: rows are assigned to gather lanes by entry count at load
time (longest first, each to the lane with the fewest entries so far), row i among the lanes of
set i mod W (lanes l = i mod W, + W, + 2W, ...; W = ``stream_bytes``) so that the W rows of a y
beat have their sums in W distinct lanes; a lane's rows get slots
0, 1, ... in assignment order. Each lane's entries are stored column-major (by column, then
slot) so that the lane consumes the broadcast input elements in arrival order; an empty row
contributes one zero entry at column 0 (so every row sum is written), and each lane's stream
ends with one ``end`` word. The row map tells the output side where row i's sum lives.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from doping.arch import (LAYER_REG_WORDS, REG_INDEX, REGS, SEL_BIAS, SEL_CELL_LUT, SEL_GATE_LUT,
                         SEL_LAYER_REGS, SEL_OVERLAY, SEL_A, SEL_B, SEL_REG, SEL_ROWMAP, lstm_alignment_problem,
                         overlay_field, rows_per_lane_bound)
from doping.golden import QuantLayer

if TYPE_CHECKING:
    from doping.config import AccelConfig


@dataclass(frozen=True)
class LanePlan:
    """Where every overlay row lives: ``lane[i]``, ``slot[i]`` per output row, and per lane the
    column-major entries, an int64 array of rows ``(col, slot, val, first)`` (an empty row as one
    zero entry)."""

    lane: np.ndarray
    slot: np.ndarray
    entries: tuple

    def counts(self) -> tuple[int, ...]:
        return tuple(len(e) for e in self.entries)

    def rows_per_lane(self, cfg: AccelConfig) -> int:
        """Most rows any lane holds (the row-sum bank depth it needs)."""
        return int(np.bincount(self.lane, minlength=cfg.lanes).max(initial=0))


#: Plans computed lately, by (overlay content digest, lanes, W, row cap): a design-space search
#: asks for the same layer's plan on every array shape (the plan does not depend on it).
_PLANS: OrderedDict = OrderedDict()
_PLANS_KEPT = 8


def lane_plan(layer: QuantLayer, cfg: AccelConfig) -> LanePlan:
    """Balanced row -> lane assignment (greedy longest-first within each lane set, no lane beyond
    its row-sum bank's depth, which ``AccelConfig.check`` ensures is at least
    ``rows_per_lane_bound``) and each lane's entries as an int64 array of rows (col, slot, val,
    first). Plans are shared between calls (their arrays are read-only)."""
    cap = max(cfg.memories["ov_acc"].depth, rows_per_lane_bound(layer.m, cfg))
    digest = hashlib.blake2b(digest_size=16)
    for a in (layer.rowptr, layer.cols, layer.vals):
        digest.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    key = (digest.digest(), layer.m, cfg.lanes, cfg.stream_bytes, cap)
    if key in _PLANS:
        _PLANS.move_to_end(key)
        return _PLANS[key]
    plan = _lane_plan(layer, cfg.lanes, cfg.stream_bytes, cap)
    for a in (plan.lane, plan.slot, *plan.entries):
        a.flags.writeable = False
    _PLANS[key] = plan
    if len(_PLANS) > _PLANS_KEPT:
        _PLANS.popitem(last=False)
    return plan


def _lane_plan(layer: QuantLayer, lanes: int, W: int, cap: int) -> LanePlan:
    rp = np.asarray(layer.rowptr, dtype=np.int64)
    per_row = np.maximum(np.diff(rp), 1)
    order = np.argsort(-per_row, kind="stable")
    heaps = [[(0, l) for l in range(w, lanes, W)] for w in range(W)]
    lane = np.empty(layer.m, dtype=np.int64)
    slot = np.empty(layer.m, dtype=np.int64)
    used = [0] * lanes
    for i in order.tolist():
        heap = heaps[i % W]
        load, l = heapq.heappop(heap)
        lane[i], slot[i] = l, used[l]
        used[l] += 1
        if used[l] < cap:
            heapq.heappush(heap, (load + int(per_row[i]), l))
    # every nonzero, plus one zero entry at column 0 for each empty row
    empty = np.flatnonzero(rp[1:] == rp[:-1])
    row = np.concatenate((np.repeat(np.arange(layer.m), np.diff(rp)), empty))
    col = np.concatenate((np.asarray(layer.cols, dtype=np.int64), np.zeros(len(empty), np.int64)))
    val = np.concatenate((np.asarray(layer.vals, dtype=np.int64), np.zeros(len(empty), np.int64)))
    e_lane, e_slot = lane[row], slot[row]
    idx = np.lexsort((e_slot, col, e_lane))  # by lane, then column, then slot
    e_lane, e_slot, col, val = e_lane[idx], e_slot[idx], col[idx], val[idx]
    first = np.zeros(len(idx), dtype=np.int64)
    key = e_lane * (int(e_slot.max(initial=0)) + 1) + e_slot
    _, first_at = np.unique(key, return_index=True)
    first[first_at] = 1
    table = np.stack((col, e_slot, val, first), axis=1)
    bounds = np.searchsorted(e_lane, np.arange(lanes + 1))
    return LanePlan(lane, slot, tuple(table[bounds[l]:bounds[l + 1]] for l in range(lanes)))


def lane_entries(layer: QuantLayer, cfg: AccelConfig) -> tuple:
    """Per lane, its column-major overlay entries (col, slot, val, first); see ``lane_plan``."""
    return lane_plan(layer, cfg).entries


def register_values(layer: QuantLayer, cfg: AccelConfig, region: int = 0) -> dict[str, int]:
    (m1, n1), (m2, n2) = layer.factor_shapes
    return {
        "order": 0 if layer.order == "AX" else 1, "m1": m1, "n1": n1, "m2": m2, "n2": n2, "n": layer.n,
        "m": layer.m,
        "t_mult": layer.t_rq.multiplier, "t_shift": layer.t_rq.shift,
        "ov_mult": layer.ov_rq.multiplier, "ov_shift": layer.ov_rq.shift,
        "y_mult": layer.y_rq.multiplier, "y_shift": layer.y_rq.shift, "kp_off": int(not layer.has_kp),
        "layer": region,
    }


def register_words(layer: QuantLayer, cfg: AccelConfig, region: int = 0) -> list[tuple[int, int, int]]:
    """The register words of ``layer`` in resident region ``region``: all a switch to a layer
    whose weights are already loaded costs."""
    return [(SEL_REG, REG_INDEX[k], v) for k, v in register_values(layer, cfg, region).items()]


def load_words(layer: QuantLayer, cfg: AccelConfig, region: int = 0) -> list[tuple[int, int, int]]:
    """(sel, addr, data) words that load ``layer`` into resident region ``region`` (< the config's
    ``resident_layers``) of the weight memories, registers first; checks the layer fits first."""
    cfg.check(layer)
    if not 0 <= region < cfg.resident_layers:
        raise ValueError(f"region {region} outside the config's {cfg.resident_layers} resident layers")
    mem = cfg.memories
    (m1, n1), (m2, n2) = layer.factor_shapes
    words = register_words(layer, cfg, region)
    a, b, ov, rm = (mem[k] for k in ("a", "b", "overlay", "row_map"))
    a_base, b_base, o_base, r_base = (region * x.layer_depth for x in (a, b, ov, rm))
    for r in range(m1):
        for k in range(n1):
            words.append((SEL_A, a.address(r % cfg.rows, a_base + (r // cfg.rows) * n1 + k), int(layer.a[r, k]) & 0xFF))
    for j in range(m2):
        for k in range(n2):
            words.append((SEL_B, b.address(j % cfg.cols, b_base + (j // cfg.cols) * n2 + k), int(layer.b[j, k]) & 0xFF))
    plan = lane_plan(layer, cfg)
    field = overlay_field(cfg)
    for lane, entries in enumerate(plan.entries):
        for p, (col, slot, val, first) in enumerate(entries.tolist()):
            words.append((SEL_OVERLAY, ov.address(lane, o_base + p), field.pack(col, slot, val, first, 0)))
        words.append((SEL_OVERLAY, ov.address(lane, o_base + len(entries)), field.pack(0, 0, 0, 0, 1)))
    slot_bits, W = field.slot_bits, cfg.stream_bytes
    for i in range(layer.m):  # row i in bank i mod W, at i // W
        words.append((SEL_ROWMAP, rm.address(i % W, r_base + i // W), (int(plan.lane[i]) << slot_bits) | int(plan.slot[i])))
    return words


def cell_register_values(cell, last: bool) -> dict[str, int]:
    """The cell registers of LSTM layer ``cell`` (golden LSTMLayerQuant)."""
    return {"hidden": cell.hidden, "inputs": cell.input_size,
            "cell_mult": cell.cell_rq.multiplier, "cell_shift": cell.cell_rq.shift,
            "h_mult": cell.h_rq.multiplier, "h_shift": cell.h_rq.shift,
            "out_mult": cell.out_rq.multiplier, "out_shift": cell.out_rq.shift, "last": int(last)}


def lstm_gate_values(cell, cfg: AccelConfig, region: int) -> dict[str, int]:
    """The mat-vec registers of an LSTM layer's gate layer: its output requantisation is the
    cell's pre-activation requantisation (the y stream carries p, bias added in the join)."""
    if len(cell.gates) != 1:
        raise ValueError(f"the LSTM top runs one gate layer per LSTM layer, {cell.gates[-1].name!r} is a chain of "
                         f"{len(cell.gates)}")
    return {**register_values(cell.gates[0], cfg, region), "y_mult": cell.pre_rq.multiplier,
            "y_shift": cell.pre_rq.shift}


def lstm_load_words(cells: list, cfg: AccelConfig) -> list[tuple[int, int, int]]:
    """(sel, addr, data) words that place an LSTM stack (golden LSTMLayerQuant per layer) in the
    LSTM top: layer k's gate layer in resident region k (``load_words``), its bias, its layer
    register words (mat-vec word i in bits 0-31, cell word i in bits 32-63) and its tables."""
    if not cfg.lstm_cell:
        raise ValueError("the config has no LSTM cell unit (lstm_cell = 0)")
    if len(cells) > cfg.resident_layers:
        raise ValueError(f"an LSTM of {len(cells)} layers needs resident_layers >= {len(cells)}, the config has "
                         f"{cfg.resident_layers}")
    mem = cfg.memories
    words = []
    for k, cell in enumerate(cells):
        if cell.hidden > cfg.max_hidden:
            raise ValueError(f"LSTM layer {k}: hidden size {cell.hidden} > the config's {cfg.max_hidden}")
        problem = lstm_alignment_problem(cell.input_size, cell.hidden, cfg.stream_bytes)
        if problem:
            raise ValueError(f"LSTM layer {k}: {problem}")
        gate_words = lstm_gate_values(cell, cfg, k)  # refuses chains
        words += load_words(cell.gates[0], cfg, region=k)
        b_base = k * mem["bias"].layer_depth
        W = cfg.stream_bytes  # gate row i's bias in bank i mod W
        words += [(SEL_BIAS, mem["bias"].address(i % W, b_base + i // W), int(v) & 0xFFFFFFFF)
                  for i, v in enumerate(cell.bias.tolist())]
        acc = [gate_words[r] & 0xFFFFFFFF for r in REGS]
        acc += [0] * (LAYER_REG_WORDS - len(acc))  # SWITCH replays all LAYER_REG_WORDS words
        cw = list(cell_register_values(cell, k == len(cells) - 1).values())
        cw += [0] * (len(acc) - len(cw))
        r_base = k * mem["layer_regs"].layer_depth
        words += [(SEL_LAYER_REGS, r_base + i, a | (c << 32)) for i, (a, c) in enumerate(zip(acc, cw))]
        lut = np.concatenate([cell.sigmoid, cell.tanh]).astype(np.int64) & 0xFFFF
        words += [(SEL_GATE_LUT, k * mem["gate_lut"].layer_depth + i, int(v)) for i, v in enumerate(lut.tolist())]
        lut = cell.tanh_c.astype(np.int64) & 0xFFFF
        words += [(SEL_CELL_LUT, k * mem["cell_lut"].layer_depth + i, int(v)) for i, v in enumerate(lut.tolist())]
    return words
