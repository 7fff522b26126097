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
                                     **v) for name, v in data["libraries"].items()}


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
def _bank_um2(macros: tuple, flop_um2: float, depth: int, width: int) -> tuple[float, bool]:
    from doping.ppa.macros import FLOPS_PER_MEMORY_BIT, implement

    impl = implement("bank", depth, width, list(macros), FLOPS_PER_MEMORY_BIT * flop_um2)
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


def basis(tech_nm: int) -> str:
    """What the clock and area figures at ``tech_nm`` rest on, said beside them."""
    cal, scale = for_node(tech_nm)
    at = "" if scale == 1 else f", scaled from {cal.node_nm} nm (period x{scale:.3g}, area x{scale ** 2:.3g})"
    return (f"clock and area calibrated to the standard-cell flow in {cal.label} with its SRAM macros "
            f"(critical path {cal.period_ns:.2f} ns, logic x{cal.logic_scale:.3f}; fitted on "
            f"{', '.join(cal.fit_configs)}){at}")


def silicon_basis(tech_nm: int) -> str:
    """What every area, energy, power and clock figure of the estimator rests on, said beside
    each of them: the library and corner the clock and area are calibrated in, and the published
    per-action energy tables."""
    return (f"{basis(tech_nm)}; energy from published 45 nm per-action tables [H14]/[A45], scaled "
            "(node/45)^2, not calibrated")
