"""The whole LSTM stack per token on the LSTM top (hw/lstm.py): cycles (exact, equal to the RTL's:
tests/hw/test_lstm.py and the cocotb sequence test), energy and area per token.

Per step (one token of each of the config's ``lstm_batch`` sequences), every layer k runs in turn:
its gate mat-vecs (``vector_times``, on the config with the bias stage) and
``LAYER_OVERHEAD_CYCLES`` around them (register switch, feed, cell, hand-over), plus
``TOKEN_OVERHEAD_CYCLES``. All layers' weights and state are resident when ``resident_layers`` >=
layers; otherwise every token reloads each layer's words from DRAM — a model only: the LSTM top
refuses stacks it cannot hold.
"""

from __future__ import annotations

import dataclasses
import math

from doping.arch import LAYER_REG_WORDS, lstm_alignment_problem
from doping.compression import account
from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate import tables
from doping.estimate.model import clock_mhz, estimate, static_pj_per_cycle
from doping.estimate.results import LSTMEstimate, LSTMLayerCost


def lstm_config(cfg: AccelConfig, layers: int) -> AccelConfig:
    """``cfg`` as the LSTM top for a stack of ``layers``: the cell unit on (W = ``stream_bytes``
    lanes: it takes a beat of W gate rows a cycle), every layer resident (when the config allows
    that many)."""
    from doping.config import MAX_RESIDENT_LAYERS

    return dataclasses.replace(cfg, lstm_cell=1,
                               resident_layers=min(max(cfg.resident_layers, layers), MAX_RESIDENT_LAYERS))


def cell_energy_pj(cell, cfg: AccelConfig, next_inputs: int) -> float:
    """Energy (pJ at 45 nm) of one token's step of one LSTM layer outside its mat-vec: the bias (a
    read and an add per gate row), the register switch (shared by the step's ``lstm_batch``
    tokens), per hidden unit the table reads, the i/f/g buffer, cell and hidden state accesses,
    three products (priced as int32 multiplies), the cell adder and three requantisers; the
    hand-over buffer written here and read by the next layer."""
    inv = cfg.memories
    H, rows = cell.hidden, 4 * cell.hidden

    def rd(key, n):
        return n * tables.sram_read_pj(inv[key].bank_bytes, inv[key].width)

    def wr(key, n):
        return n * tables.sram_write_pj(inv[key].bank_bytes, inv[key].width)

    e = rd("bias", rows) + rows * tables.ADD_INT32_PJ + rd("layer_regs", LAYER_REG_WORDS) / cfg.lstm_batch
    e += rd("gate_lut", rows) + wr("gbuf", 3 * H) + rd("gbuf", 3 * H) + rd("c_state", H) + wr("c_state", H)
    e += rd("cell_lut", H) + wr("h_state", H) + rd("h_state", H)
    e += H * (3 * tables.MULT_INT32_PJ + tables.ADD_INT32_PJ + 3 * (tables.MULT_INT32_PJ + tables.ADD_INT32_PJ))
    if next_inputs:
        e += wr("h_next", H) + rd("h_next", next_inputs)
    return e


def lstm_per_token(cells: list, cfg: AccelConfig) -> LSTMEstimate:
    """Cycles, energy, latency and power per token of the LSTM stack ``cells`` (golden
    LSTMLayerQuant) on ``cfg`` (which must have the cell unit: see ``lstm_config``). A step takes
    one token of each of the config's ``lstm_batch`` sequences: per layer their vectors go back to
    back through the mat-vec accelerator (``vector_times``), so ``cycles_per_step`` is what the
    RTL measures between steps and ``cycles_per_token`` = that / batch."""
    from doping.estimate.cycles import vector_times
    from doping.hw.loader import lstm_load_words
    from doping.arch import LAYER_OVERHEAD_CYCLES, TOKEN_OVERHEAD_CYCLES

    if not cfg.lstm_cell:
        raise DopingError("an LSTM stack is priced on a config with the cell unit (lstm_cell = 1)")
    for k, c in enumerate(cells):
        if len(c.gates) != 1:
            raise DopingError(f"LSTM layer {k}: the LSTM top runs one gate layer per LSTM layer, not a chain of "
                              f"{len(c.gates)} ({c.gates[-1].name})")
        if c.hidden > cfg.max_hidden:
            raise DopingError(f"LSTM layer {k}: hidden size {c.hidden} > the config's {cfg.max_hidden}")
        problem = lstm_alignment_problem(c.input_size, c.hidden, cfg.stream_bytes)
        if problem:
            raise DopingError(f"LSTM layer {k}: {problem}")
    resident = cfg.resident_layers >= len(cells)
    e_scale, _ = tables.node_scale(cfg.tech_nm)
    static = static_pj_per_cycle(cfg)  # each cycle's clock energy and leakage (0 uncalibrated)
    rows, area = [], 0.0
    for k, c in enumerate(cells):
        g = c.gates[0]
        p = estimate(g, cfg)  # check(): a gate layer that does not fit is an error
        area = p.area_mm2  # the one design's, whichever layer
        nxt = cells[k + 1].input_size if k + 1 < len(cells) else 0
        # streamed: the layer's every load word (weights, bias, registers, tables) each token
        reload = 0 if resident else len(lstm_load_words([c], dataclasses.replace(cfg, resident_layers=1)))
        bits = account(g.m, g.n, g.factor_shapes, g.nnz).stored_bits + 32 * 4 * c.hidden + 3 * 256 * 16
        span = vector_times(g, cfg, cfg.lstm_batch)[-1]["sent_seen"]  # first x .. the last vector's last y
        rows.append(LSTMLayerCost(layer=g.name, hidden=c.hidden, matvec_cycles=span,
                                  cycles=span + LAYER_OVERHEAD_CYCLES + reload,
                                  # the vector's own energy less its interval's static share, plus the
                                  # static energy of this layer's share of the step
                                  matvec_energy_pj=p.energy_pj - static * p.interval_cycles
                                  + static * (span + LAYER_OVERHEAD_CYCLES + reload) / cfg.lstm_batch,
                                  cell_energy_pj=cell_energy_pj(c, cfg, nxt) * e_scale,
                                  reload_energy_pj=0.0 if resident else
                                  math.ceil(bits / 64) * tables.DRAM_64B_PJ * e_scale / cfg.lstm_batch))
    step = TOKEN_OVERHEAD_CYCLES + sum(r.cycles for r in rows)
    cycles = step / cfg.lstm_batch
    energy = sum(r.matvec_energy_pj + r.cell_energy_pj + r.reload_energy_pj for r in rows) \
        + static * TOKEN_OVERHEAD_CYCLES / cfg.lstm_batch
    clock = clock_mhz(cfg)
    return LSTMEstimate(
        weights=(f"resident: all {len(cells)} LSTM layers' weights, tables and state on chip" if resident else
                 f"streamed (model only, not in the RTL): the config holds {cfg.resident_layers} of {len(cells)} "
                 "layers, so every step reloads each layer's words from DRAM"),
        resident=resident, batch=cfg.lstm_batch, cycles_per_step=step,
        cycles_per_token=step if cfg.lstm_batch == 1 else cycles, energy_per_token_pj=energy,
        latency_per_token_us=step / clock, tokens_per_s=clock * 1e6 / cycles,
        power_mw=energy * 1e-12 * clock * 1e6 / cycles * 1e3, clock_mhz=clock, area_mm2=area, layers=tuple(rows))


def lstm_design(base: AccelConfig, cells: list, layers: list | None = None) -> tuple[AccelConfig, list[dict]]:
    """The LSTM top's design point for ``cells``: over the array shapes, lane counts and stream
    widths of ``estimate.designs.design_points`` (buffers fitted, every layer resident; widths
    that divide every layer's inputs and hidden size), the one with the least cycles per token x
    area (then the smaller area) — a token's layers run one after another, so latency, not
    streaming interval, is what the LSTM top is judged on. ``layers``: every layer the design must
    also run as a mat-vec (a pack's other layers; default the gate layers). Returns (config, every candidate's
    rows, cols, lanes, stream_bytes, cycles per token, energy per token, area)."""
    from doping.estimate.designs import design_points, fit_layers

    best, table = None, []
    gates = [g for c in cells for g in c.gates]
    for point in design_points(base, layers or gates):
        if any(lstm_alignment_problem(c.input_size, c.hidden, point.stream_bytes) for c in cells):
            continue
        cfg = lstm_config(fit_layers(point, layers or gates), len(cells))
        t = lstm_per_token(cells, cfg)
        table.append({"rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes, "stream_bytes": cfg.stream_bytes,
                      "cycles_per_token": t.cycles_per_token, "energy_per_token_pj": t.energy_per_token_pj,
                      "area_mm2": t.area_mm2})
        key = (t.cycles_per_token * t.area_mm2, t.area_mm2)
        if best is None or key < best[0]:
            best = (key, cfg)
    return best[1], table
