"""The estimator's clock and area, calibrated against the standard-cell flow (``doping.ppa``).

For each reference library (Nangate45 + fakeram45 at 45 nm, sky130 HD + OpenRAM at 130 nm),
``bench/calibrate.py`` fits two numbers to the flow's rows in docs/stdcell_ppa.json and writes
them to calibration.json:

- ``period_ns``: the critical path the flow timed (clock-to-q + logic + setup, OpenSTA at the
  library's typical corner), the mean over the fit configs. The estimator's clock is
  min(config clock, 1000 / period_ns): the generated design's critical path is a requantiser, whose
  depth grows little with the design (Nangate45: 58 cells on ``minimal``, 55 on ``default``, 64 on
  ``flagship``; the held-out error in docs/calibration.md says how little).
- ``logic_scale``: the flow's standard-cell area over the estimator's cells (its yosys-fitted
  logic counted in the library's NAND2, plus the memories the flow leaves in flip-flops); applied
  to both.

Power (fitted by the same script to the flow rows whose activity comes from a Verilator run of a
pack, ``bench/stdcell_ppa.py --pack-vectors``): the standard cells' energy per clock cycle is
``flop_memory_pj_per_um2`` x the area of the memories kept in flip-flops plus ``logic_pj_per_um2``
x the rest of the cells — the clock pins of the flip-flops and the clock tree, paid every cycle
whether or not data moves (the design has no clock gating), denser in flip-flop memories than in
logic — plus the published per-action energies of the arithmetic (what moves with the data, at
the ~0.005 toggles per bit per cycle the packs produce a few per cent of the cells' power); their
leakage is ``leak_uw_per_um2`` x their area; the SRAM macros' read/write energy and leakage come
from the macros' Liberty files with the estimator's exact access counts, as the flow prices them.

Memories are tiled from the library's SRAM macros exactly as the flow tiles them
(``ppa.macros.implement``); the macro files ship with the project (doping/ppa/pdk), the
library's cell areas are stored here, so no Liberty file is read to estimate. A node without a
reference library takes the nearest one's, the period scaled by the node ratio (FO4) and the
area by its square. Units: ns, MHz, um^2.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate.tables import CELL_UM2

CALIBRATION = Path(__file__).with_name("calibration.json")
PDK = Path(__file__).resolve().parent.parent / "ppa" / "pdk"


@dataclass(frozen=True)
class LibraryCalibration:
    """What the estimator takes from one reference library and the flow's results on it."""

    library: str
    corner: str
    node_nm: int
    period_ns: float  # critical path of the generated design in this library, fitted
    logic_scale: float  # flow cell area / estimator cell area, fitted
    nand2_um2: float  # the library's smallest two-input NAND
    flop_um2: float  # the library's smallest flip-flop
    srams: tuple[str, ...]  # macro Liberty files in doping/ppa/pdk
    fit_configs: tuple[str, ...]
    command: str
    # power, fitted to the flow's activity-driven rows (None: not calibrated for this library)
    flop_memory_pj_per_um2: float | None = None  # a cycle's energy per um^2 of memories kept in flip-flops
    logic_pj_per_um2: float | None = None  # a cycle's energy per um^2 of the other cells
    leak_uw_per_um2: float | None = None  # standard-cell leakage per um^2
    power_fit_configs: tuple[str, ...] = ()

    @property
    def has_power(self) -> bool:
        return self.flop_memory_pj_per_um2 is not None

    @property
    def label(self) -> str:
        return f"{self.library}, {self.corner}"

    @functools.cached_property
    def macros(self) -> tuple:
        from doping.ppa.macros import Macro

        return tuple(Macro.from_liberty(PDK / name) for name in self.srams)


@functools.cache
def calibrations() -> dict[str, LibraryCalibration]:
    try:
        data = json.loads(CALIBRATION.read_text())
    except (OSError, ValueError) as e:
        raise DopingError(f"estimator calibration {CALIBRATION} is unreadable: {e}") from None
    return {name: LibraryCalibration(library=name, srams=tuple(v.pop("srams")), fit_configs=tuple(v.pop("fit_configs")),
                                     power_fit_configs=tuple(v.pop("power_fit_configs", ())), **v)
            for name, v in data["libraries"].items()}


def for_node(tech_nm: int) -> tuple[LibraryCalibration, float]:
    """The reference library at ``tech_nm`` (or the nearest node's) and the linear scale to
    ``tech_nm`` (1.0 at the library's own node)."""
    cal = min(calibrations().values(), key=lambda c: (abs(c.node_nm - tech_nm), c.node_nm))
    return cal, tech_nm / cal.node_nm


def fmax_mhz(cfg: AccelConfig) -> float:
    """The clock the generated design reaches at ``cfg.tech_nm`` (the calibrated critical path)."""
    cal, scale = for_node(cfg.tech_nm)
    return 1e3 / (cal.period_ns * scale)


def logic_in_library_um2(logic_gates_um2: float, nand2_um2: float) -> float:
    """The estimator's logic (fitted in NanGate45 gate areas, 0.798 um^2 a NAND2) in a library
    whose NAND2 takes ``nand2_um2``."""
    return logic_gates_um2 * nand2_um2 / CELL_UM2["gate"]


@functools.cache
def _bank(macros: tuple, flop_um2: float, depth: int, width: int):
    """One bank as the flow builds it (``ppa.macros.MemoryImpl``; its ``macro`` None: flip-flops)."""
    from doping.ppa.macros import FLOPS_PER_MEMORY_BIT, implement

    return implement("bank", depth, width, list(macros), FLOPS_PER_MEMORY_BIT * flop_um2)


def _bank_um2(macros: tuple, flop_um2: float, depth: int, width: int) -> tuple[float, bool]:
    from doping.ppa.macros import FLOPS_PER_MEMORY_BIT

    impl = _bank(macros, flop_um2, depth, width)
    if impl.macro is None:
        return depth * width * FLOPS_PER_MEMORY_BIT * flop_um2, False
    return impl.area_um2, True


def memory_parts_um2(cfg: AccelConfig, macros: tuple, flop_um2: float) -> dict[str, tuple[float, bool]]:
    """Every memory of ``cfg`` as the flow builds it from ``macros`` or flip-flops of ``flop_um2``:
    {name: (area of all its banks, built from macros?)}."""
    out = {}
    for name, mem in cfg.memories.items():
        area, macro = _bank_um2(macros, flop_um2, mem.depth, mem.width)
        out[name] = (mem.banks * area, macro)
    return out


def cells_and_macros_um2(cfg: AccelConfig, logic_gates_um2: float, cal: LibraryCalibration) -> tuple[float, float]:
    """(standard cells, SRAM macros) of ``cfg`` in ``cal``'s library at its node, before the
    fitted ``logic_scale``: what ``bench/calibrate.py`` fits against the flow's cell area."""
    parts = memory_parts_um2(cfg, cal.macros, cal.flop_um2).values()
    cells = logic_in_library_um2(logic_gates_um2, cal.nand2_um2) + sum(a for a, macro in parts if not macro)
    return cells, sum(a for a, macro in parts if macro)


def area_um2(cfg: AccelConfig, logic_gates_um2: float) -> dict[str, float]:
    """Area by part at ``cfg.tech_nm``: ``sram_<memory>`` for every memory (macros, or flip-flops
    scaled as the logic) and ``logic`` (``logic_gates_um2``: the yosys-fitted logic in NanGate45
    gate areas, 0.798 um^2 a NAND2)."""
    cal, scale = for_node(cfg.tech_nm)
    out = {f"sram_{name}": area * (1.0 if macro else cal.logic_scale) * scale ** 2
           for name, (area, macro) in memory_parts_um2(cfg, cal.macros, cal.flop_um2).items()}
    out["logic"] = logic_in_library_um2(logic_gates_um2, cal.nand2_um2) * cal.logic_scale * scale ** 2
    return out


def cells_um2(cfg: AccelConfig, logic_gates_um2: float) -> tuple[float, float]:
    """The standard cells of ``cfg`` at its node, as ``area_um2`` counts them: (the memories kept
    in flip-flops, the logic)."""
    cal, scale = for_node(cfg.tech_nm)
    parts = memory_parts_um2(cfg, cal.macros, cal.flop_um2).values()
    k = cal.logic_scale * scale ** 2
    return (sum(a for a, macro in parts if not macro) * k, logic_in_library_um2(logic_gates_um2, cal.nand2_um2) * k)


def macro_memories(cfg: AccelConfig) -> dict[str, tuple[float, float]]:
    """The memories of ``cfg`` built from SRAM macros in its node's reference library: {name:
    (energy of one word read or written in pJ, leakage of all its banks in uW)}; both scaled to
    ``cfg.tech_nm`` as the tables scale (node ratio squared) off the library's node."""
    cal, scale = for_node(cfg.tech_nm)
    out = {}
    for name, mem in cfg.memories.items():
        impl = _bank(cal.macros, cal.flop_um2, mem.depth, mem.width)
        if impl.macro is not None:
            out[name] = (impl.access_energy_pj() * scale ** 2, mem.banks * impl.leakage_uw * scale ** 2)
    return out


def macro_access_pj(cfg: AccelConfig, accesses: dict) -> dict[str, float]:
    """One vector's read and write energy (pJ) of every memory built from SRAM macros, from the
    macros' energy per access and ``accesses`` (``estimate.model.accesses``)."""
    return {name: (accesses[name]["reads"] + accesses[name]["writes"]) * pj
            for name, (pj, _) in macro_memories(cfg).items() if name in accesses}


def power_parts_pj(cfg: AccelConfig, logic_gates_um2: float, accesses: dict, datapath_pj: dict,
                   interval_cycles: float, clock_mhz: float) -> dict[str, float] | None:
    """One vector's energy by part (pJ) from the calibrated library, or None where the node's
    library has no power fit: ``sram_<name>`` from the macros, every other ``datapath_pj`` entry
    (the published per-action energies at the node: the arithmetic, and the accesses of memories
    kept in flip-flops) as it is, ``cells_clock`` (the cells' data-independent energy over the
    vector's interval), ``leakage`` and ``sram_leakage`` (cells, macros; over the interval at
    ``clock_mhz``)."""
    cal, _ = for_node(cfg.tech_nm)
    if not cal.has_power:
        return None
    clock_pj, cells_leak_uw, macros_leak_uw = _static(cfg, logic_gates_um2)
    out = dict(datapath_pj)
    out.update({f"sram_{name}": pj for name, pj in macro_access_pj(cfg, accesses).items()})
    out["cells_clock"] = clock_pj * interval_cycles
    vector_us = interval_cycles / clock_mhz
    out["leakage"] = cells_leak_uw * vector_us  # uW x us = pJ
    out["sram_leakage"] = macros_leak_uw * vector_us
    return out


def _static(cfg: AccelConfig, logic_gates_um2: float) -> tuple[float, float, float]:
    """(the cells' clock energy a cycle in pJ, the cells' leakage in uW, the macros' leakage in uW)."""
    cal, _ = for_node(cfg.tech_nm)
    flop_memories, logic = cells_um2(cfg, logic_gates_um2)
    return (cal.flop_memory_pj_per_um2 * flop_memories + cal.logic_pj_per_um2 * logic,
            cal.leak_uw_per_um2 * (flop_memories + logic), sum(leak for _, leak in macro_memories(cfg).values()))


def static_pj_per_cycle(cfg: AccelConfig, logic_gates_um2: float, clock_mhz: float) -> float:
    """The energy every clock cycle costs whatever the data (the cells' clock energy and the
    leakage of cells and macros at ``clock_mhz``), in pJ; 0 where the node's library has no power
    fit. What a cycle spent loading, switching layers or waiting adds."""
    if not for_node(cfg.tech_nm)[0].has_power:
        return 0.0
    clock_pj, cells_leak_uw, macros_leak_uw = _static(cfg, logic_gates_um2)
    return clock_pj + (cells_leak_uw + macros_leak_uw) / clock_mhz


def short_spec(spec: str) -> str:
    """A config spec (``NAME:field=value,...``) with its capacity overrides left out, for a label."""
    name, _, over = spec.partition(":")
    kept = [o for o in over.split(",") if o and not o.startswith("max_")]
    return name + (":" + ",".join(kept) if kept else "") + (",…" if len(kept) < len(over.split(",")) and over else "")


def basis(tech_nm: int) -> str:
    """What the clock and area figures at ``tech_nm`` rest on, said beside them."""
    cal, scale = for_node(tech_nm)
    at = "" if scale == 1 else f", scaled from {cal.node_nm} nm (period x{scale:.3g}, area x{scale ** 2:.3g})"
    return (f"clock and area calibrated to the standard-cell flow in {cal.label} with its SRAM macros "
            f"(critical path {cal.period_ns:.2f} ns, logic x{cal.logic_scale:.3f}; fitted on "
            f"{', '.join(cal.fit_configs)}){at}")


def silicon_basis(tech_nm: int) -> str:
    """What every area, energy, power and clock figure of the estimator rests on, said beside
    each of them: the library and corner the clock, area and power are calibrated in, or the
    published per-action energy tables where power is not."""
    cal, _ = for_node(tech_nm)
    if cal.has_power:
        return (f"{basis(tech_nm)}; energy and power calibrated to the same flow's power report with "
                f"simulated activity (SRAM from the macros; a cycle of the cells {cal.flop_memory_pj_per_um2 * 1e3:.3g} "
                f"fJ per um^2 of flip-flop memory, {cal.logic_pj_per_um2 * 1e3:.3g} of logic; data path from the "
                f"45 nm per-action tables; fitted on "
                f"{', '.join(map(short_spec, cal.power_fit_configs))})")
    return (f"{basis(tech_nm)}; energy from published 45 nm per-action tables [H14]/[A45], scaled "
            "(node/45)^2, not calibrated")
