"""Estimator: cycles (exact, from ``cycles.schedule``), SRAM, energy, area and power of one
layer on one accelerator config: clock, area and energy calibrated to the standard-cell flow in
the node's reference library (``calibration``), the data path priced with ``tables``
(docs/estimator.md)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from doping.arch import PHASE_UNIT, UNITS
from doping.config import X_WINDOW, AccelConfig
from doping.estimate import calibration, tables
from doping.estimate.cycles import schedule
from doping.estimate.results import (Breakdown, LayerEstimate, LayerInfo, ModelEstimate, TokenEstimate, TokenLayer,
                                     Utilisation)
from doping.errors import DopingError
from doping.golden import QuantLayer

AREA_FIT = Path(__file__).with_name("area_fit.json")
TIMING = Path(__file__).with_name("timing.json")


def fmax_estimate_mhz(cfg: AccelConfig) -> float:
    """Clock the generated design reaches at ``cfg.tech_nm``: the critical path the standard-cell
    flow timed in the node's reference library (``calibration``)."""
    return calibration.fmax_mhz(cfg)


def rule_fmax_mhz(cfg: AccelConfig) -> float:
    """The uncalibrated rule, kept for comparison: the deepest register-to-register path measured
    over the presets by bench/timing.py (timing.json), one FO4 per gate level at ``cfg.tech_nm``
    (an upper bound by 2-3x: docs/calibration.md)."""
    from doping.hw.tools import fmax_mhz

    return fmax_mhz(json.loads(TIMING.read_text())["max_levels"], cfg.tech_nm)


def clock_mhz(cfg: AccelConfig) -> float:
    """The clock every time and power figure uses: the config's, or the netlist's estimate if lower."""
    return min(cfg.clock_mhz, fmax_estimate_mhz(cfg))


def static_pj_per_cycle(cfg: AccelConfig) -> float:
    """pJ every cycle of ``cfg`` costs whatever it does (clock energy and leakage, calibrated; 0
    on the uncalibrated tables): what load, switch, handover and idle cycles add."""
    return calibration.static_pj_per_cycle(cfg, logic_area_um2(cfg), clock_mhz(cfg))


def utilisation(layer: QuantLayer, cfg: AccelConfig, s=None) -> Utilisation:
    """Busy fractions (0-1) per vector: ``array_kp``: MAC slots used in the Kronecker phases
    (KP MACs / (R*C * cycles of G1 and G2)); ``lanes``: overlay entries / (L * cycles from the
    lanes' start until every lane is done), a batch's (an entry is B MACs); ``interval``: each
    unit's busy cycles per vector over the steady-state interval (which unit binds)."""
    s = s or schedule(layer, cfg)
    kp_cycles = s.phases["G1"] + s.phases["G2"]
    return Utilisation(array_kp=s.kp_macs / (cfg.rows * cfg.cols * kp_cycles) if kp_cycles else 0.0,
                       lanes=sum(s.lane_entries) / (cfg.lanes * s.batch * s.phases["GATHER"]),
                       interval={u: sum(c for ph, c in s.phases.items() if PHASE_UNIT[ph] == u) / s.interval
                                 for u in UNITS})


def cell_area_um2(by_type: dict) -> float:
    """Area of yosys gate-level cells at 45 nm ([N45] cell areas by kind)."""
    total = 0.0
    for t, n in by_type.items():
        if t.startswith("$mem"):
            continue  # memories are priced as SRAM macros
        if "DFF" in t:
            kind = "ff"
        elif t == "$_MUX_":
            kind = "mux"
        elif t in ("$_XOR_", "$_XNOR_"):
            kind = "xor"
        else:
            kind = "gate"
        total += n * tables.CELL_UM2[kind]
    return total


@functools.cache
def _area_fit() -> dict[str, float]:
    return json.loads(AREA_FIT.read_text())["um2"]


def logic_area_um2(cfg: AccelConfig) -> float:
    """Logic area from the yosys-fitted model: per PE, per array edge row/column, per lane, fixed,
    per stream element beyond the first, per lane window element beyond X_WINDOW (B windows a
    lane), per lane and per design for each vector of a batch beyond the first (a window and a MAC
    in every lane; batch addressing), and the LSTM top's cell unit and sequencer when the config
    has them (the cell's data path and the bias stage once per element of a beat) (coefficients in area_fit.json, produced and checked by bench/area_model.py)."""
    fit = _area_fit()
    return (fit["per_pe"] * cfg.rows * cfg.cols + fit["per_edge"] * (cfg.rows + cfg.cols)
            + fit["per_lane"] * cfg.lanes + fit["fixed"]
            + (fit["lstm_cell"] + fit["per_cell_lane"] * (cfg.stream_bytes - 1)) * cfg.lstm_cell
            + fit["per_stream_byte"] * (cfg.stream_bytes - 1)
            + fit["per_window_byte"] * cfg.lanes * cfg.batch * (cfg.x_window - X_WINDOW)
            + (fit["per_lane_batch"] * cfg.lanes + fit["per_batch"]) * (cfg.batch - 1))


def accesses(layer: QuantLayer, cfg: AccelConfig, s=None) -> dict[str, dict[str, float]]:
    """Per-vector access counts per memory: {"reads": .., "writes": ..} (one word of the bank; a
    batch's accesses shared by its B vectors are counted as their share, a fraction)."""
    s = s or schedule(layer, cfg)
    n, m, L = layer.n, layer.m, cfg.lanes
    first_act = "act_q" if layer.order == "AX" else "act_p"
    second_act = "act_p" if layer.order == "AX" else "act_q"
    acc = {k: {"reads": 0, "writes": 0} for k in cfg.memories}
    beats = -(-n // cfg.stream_bytes)  # x beats: one word of act_p (XB) or W elements of act_q (AX)
    if layer.has_kp:
        acc[first_act]["writes"] += beats if first_act == "act_p" else n
    acc["x_buf"]["writes"] += beats  # a beat a word
    acc["x_buf"]["reads"] += beats  # the broadcast to the lanes, a word a cycle
    if s.gemms:
        g1, g2 = s.gemms
        # FEED: every bank of the P and Q sources is read each feed cycle
        p1, q1 = ("a", first_act) if layer.order == "AX" else (first_act, "b")
        p2, q2 = (second_act, "b") if layer.order == "AX" else ("a", second_act)
        # (the first GEMM once per batch of s.batch vectors: its share per vector)
        for g, p, q, per in ((g1, p1, q1, s.batch), (g2, p2, q2, 1)):
            acc[p]["reads"] += g.tiles * g.k * cfg.rows // per
            acc[q]["reads"] += g.tiles * g.k * cfg.cols // per
        acc[second_act]["writes"] += g1.rows * g1.cols // s.batch
        acc["kbuf"]["writes"] += m
    entries = sum(s.lane_entries)
    # the lanes read the overlay once per batch
    acc["overlay"]["reads"] += (entries + L) / s.batch
    # gather: every entry writes its word of B row sums; all but each row's first read it back first
    acc["ov_acc"]["writes"] += entries / s.batch
    acc["ov_acc"]["reads"] += (entries - m) / s.batch
    # SEND: the row map, kbuf and the row sum of every output
    acc["row_map"]["reads"] += m
    acc["kbuf"]["reads"] += m  # read even without a Kronecker part (the join selects 0)
    acc["ov_acc"]["reads"] += m
    return acc


@functools.cache
def area_mm2(cfg: AccelConfig) -> dict[str, float]:
    """Area of ``cfg`` in mm^2 at its node, by part: each memory (``sram_<name>``: the reference
    library's SRAM macros, or flip-flops where they are smaller) and the logic, calibrated to the
    standard-cell flow (``calibration``)."""
    return {k: v / 1e6 for k, v in calibration.area_um2(cfg, logic_area_um2(cfg)).items()}


def rule_area_mm2(cfg: AccelConfig) -> dict[str, float]:
    """The uncalibrated rule, kept for comparison: SRAM at one density [A45], logic in NanGate45
    gate areas, both scaled (node/45)^2."""
    a_scale = tables.node_scale(cfg.tech_nm)[1]
    area = {f"sram_{k}": v.bits * tables.SRAM_UM2_PER_BIT * a_scale / 1e6 for k, v in cfg.memories.items()}
    area["logic"] = logic_area_um2(cfg) * a_scale / 1e6
    return area


def table_energy_pj(layer: QuantLayer, cfg: AccelConfig, s, acc: dict) -> dict[str, float]:
    """One vector's energy by part (pJ) from the published per-action tables at ``cfg.tech_nm``:
    every memory's reads and writes, the MACs, the input windows, the requantisers."""
    e_scale = tables.node_scale(cfg.tech_nm)[0]
    inv = cfg.memories
    energy = {}
    for name, a in acc.items():
        mem = inv[name]
        energy[f"sram_{name}"] = (a["reads"] * tables.sram_read_pj(mem.bank_bytes, mem.width)
                                  + a["writes"] * tables.sram_write_pj(mem.bank_bytes, mem.width))
    # MAC slots per vector (the first GEMM's are shared by its batch)
    array_slots = sum(g.tiles * g.k / per for g, per in zip(s.gemms, (s.batch, 1))) * cfg.rows * cfg.cols
    energy["array_macs"] = array_slots * tables.MAC_INT8_PJ
    energy["gather_macs"] = sum(s.lane_entries) * tables.MAC_INT8_PJ
    # input windows: each x element written into every lane's window, read once per entry; an
    # 8-bit register access priced as half the 16-bit register read of [A45]
    energy["x_window"] = (layer.n * cfg.lanes + sum(s.lane_entries)) * tables.REG16_READ_PJ / 2
    requants = (s.gemms[0].rows * s.gemms[0].cols // s.batch if s.gemms else 0) + 2 * layer.m
    energy["requant"] = requants * (tables.MULT_INT32_PJ + tables.ADD_INT32_PJ)
    return {k: v * e_scale for k, v in energy.items()}


def estimate(layer: QuantLayer, cfg: AccelConfig) -> LayerEstimate:
    """Cycles, SRAM, energy (pJ per vector, with breakdown), area (mm^2, with breakdown), power.
    Energy: the published per-action tables at the node, replaced by the library calibration's
    parts (macros, data path, cells' clock energy, leakage) where the node's library has one."""
    s = schedule(layer, cfg)
    acc = accesses(layer, cfg, s)
    inv = cfg.memories
    energy = table_energy_pj(layer, cfg, s, acc)
    area = area_mm2(cfg)
    clock = clock_mhz(cfg)
    calibrated = calibration.power_parts_pj(cfg, logic_area_um2(cfg), acc, energy, s.interval, clock)
    energy = energy if calibrated is None else calibrated
    total_pj = sum(energy.values())
    interval_s = s.interval / (clock * 1e6)
    return LayerEstimate(
        layer=LayerInfo(name=layer.name, shape=(layer.m, layer.n), factors=layer.factor_shapes, order=layer.order,
                        nnz=layer.nnz),
        config=cfg, cycles=s.cycles, latency_cycles=s.cycles, interval_cycles=s.interval, bound=s.bound,
        phase_cycles=s.phases, utilisation=utilisation(layer, cfg, s), clock_mhz=clock,
        fmax_estimate_mhz=fmax_estimate_mhz(cfg), latency_us=s.cycles / clock,
        throughput_vectors_per_s=1 / interval_s,
        sram_bits={k: v.bits for k, v in inv.items()}, sram_kib={k: v.bits / 8192 for k, v in inv.items()},
        accesses=acc, energy_pj=total_pj, area_mm2=sum(area.values()),
        # power while streaming vectors back to back: one vector's energy per interval
        power_mw=total_pj * 1e-12 / interval_s * 1e3, breakdown=Breakdown(energy_pj=energy, area_mm2=area))


def combined_utilisation(parts: list[LayerEstimate]) -> Utilisation:
    """The layers' busy fractions over all of them: the array's over their Kronecker phases, the
    lanes' over their gather phases, each unit's over the summed interval."""
    def weighted(frac, weight):
        total = sum(weight(p) for p in parts)
        return sum(frac(p) * weight(p) for p in parts) / total if total else 0.0

    interval = sum(p.interval_cycles for p in parts)
    return Utilisation(
        array_kp=weighted(lambda p: p.utilisation.array_kp, lambda p: p.phase_cycles["G1"] + p.phase_cycles["G2"]),
        lanes=weighted(lambda p: p.utilisation.lanes, lambda p: p.phase_cycles["GATHER"]),
        interval={u: sum(p.utilisation.interval[u] * p.interval_cycles for p in parts) / interval
                  for u in parts[0].utilisation.interval})


def combine(parts: list[LayerEstimate]) -> ModelEstimate:
    """Layers of one model run one after another on one accelerator: cycles, energy and the
    streaming interval add up; the config (hence area and SRAM) is shared."""
    first = parts[0]
    cycles = sum(p.cycles for p in parts)
    energy = sum(p.energy_pj for p in parts)
    interval = sum(p.interval_cycles for p in parts)
    energy_parts = {}
    for p in parts:
        for k, v in p.breakdown.energy_pj.items():
            energy_parts[k] = energy_parts.get(k, 0.0) + v
    clock = first.clock_mhz
    return ModelEstimate(
        cycles=cycles, latency_cycles=sum(p.latency_cycles for p in parts), interval_cycles=interval,
        utilisation=combined_utilisation(parts), energy_pj=energy, area_mm2=first.area_mm2,
        power_mw=energy * 1e-12 / (interval / (clock * 1e6)) * 1e3, latency_us=cycles / clock,
        throughput_vectors_per_s=clock * 1e6 / interval, clock_mhz=clock, sram_bits=first.sram_bits,
        sram_kib=first.sram_kib, breakdown=Breakdown(energy_pj=energy_parts, area_mm2=first.breakdown.area_mm2),
        config=first.config, layers=tuple(parts))


#: Cycles between a layer's last y and the first load word of the next being accepted (the
#: counters that raise ``load.ready`` are seen one cycle after the last y).
HANDOVER_CYCLES = 1


def runs_one_sequence(layers: list[QuantLayer], cfg: AccelConfig) -> bool:
    """Whether ``cfg`` can take the layers one vector at a time (a token of one sequence): only at
    batch 1 (at B > 1 the lanes, and a first GEMM, wait for a whole batch)."""
    return cfg.batch == 1


def per_token(layers: list[QuantLayer], cfg: AccelConfig, parts: list[LayerEstimate] | None = None) -> TokenEstimate:
    """A multi-layer model per token (one vector through every layer, in order) on one
    accelerator. When the config holds every layer (``resident_layers`` >= layers), a layer costs
    its register words (the switch), its latency and the handover; otherwise the accelerator holds
    one layer and every token reloads each layer (all its load words, and its stored bits — int8
    values and sparse indices, as the pack accounts them — from DRAM in 64-bit accesses). The
    handover and the words are accepted one per cycle only while every unit is idle, so layers
    follow one another without overlap; the per-layer cycles equal the RTL's
    (tests/hw/test_cycle_model.py)."""
    import math

    from doping.compression import account
    from doping.hw.loader import load_words, register_words

    if not runs_one_sequence(layers, cfg):
        raise DopingError(f"per-token cost is one sequence's, one vector at a time: it needs batch = 1, not "
                          f"{cfg.batch} (the lanes wait for a whole batch)")
    parts = parts or [estimate(layer, cfg) for layer in layers]
    e_scale, _ = tables.node_scale(cfg.tech_nm)
    resident = cfg.resident_layers >= len(layers)
    static = static_pj_per_cycle(cfg)
    rows = []
    for k, (layer, p) in enumerate(zip(layers, parts)):
        bits = account(layer.m, layer.n, layer.factor_shapes, layer.nnz).stored_bits
        switch = len(register_words(layer, cfg, k if resident else 0))
        load = switch if resident else len(load_words(layer, cfg))
        dram = 0.0 if resident else math.ceil(bits / 64) * tables.DRAM_64B_PJ * e_scale
        # a vector's energy holds its interval's static share; one vector from idle takes its latency
        run = p.energy_pj + static * (p.cycles + HANDOVER_CYCLES - p.interval_cycles)
        rows.append(TokenLayer(layer=layer.name, load_cycles=load, switch_cycles=switch, run_cycles=p.cycles,
                               cycles=load + p.cycles + HANDOVER_CYCLES, load_energy_pj=dram + static * load,
                               run_energy_pj=run))
    cycles = sum(r.cycles for r in rows)
    energy = sum(r.load_energy_pj + r.run_energy_pj for r in rows)
    clock = clock_mhz(cfg)
    weights = (f"resident: all {len(layers)} layers held on chip ({cfg.resident_layers} resident layers); a layer "
               "switch is its register words" if resident else
               f"streamed per layer: the config holds {cfg.resident_layers} of {len(layers)} layers, so every token "
               "reloads each layer from DRAM (load cycles and DRAM energy counted)")
    return TokenEstimate(
        weights=weights, resident=resident, cycles_per_token=cycles, energy_per_token_pj=energy,
        latency_per_token_us=cycles / clock, power_mw=energy * 1e-12 / (cycles / (clock * 1e6)) * 1e3,
        resident_cycles_per_token=sum(r.switch_cycles + r.run_cycles + HANDOVER_CYCLES for r in rows),
        resident_energy_per_token_pj=sum(r.run_energy_pj + static * r.switch_cycles for r in rows),
        layers=tuple(rows))

