"""Typed results of ``doping flow`` on the estimator's JSON base (``doping.estimate.results``):
the simulation stages (``LayerSim``, ``LSTMSim``), and the report (``FlowReport``) that report.json,
report.md/html and the command's summary are written from. ``to_json()`` gives report.json;
``from_json()`` reads a stage's cached result back.

Units are in the field names as in the estimator's results: cycles, ``_pj``/``_nj`` energy,
``_us`` time, ``_mhz`` clock, ``_mw`` power, ``_mm2`` area, ``_kib``/``_bits`` memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from doping.config import AccelConfig
from doping.estimate.results import JsonRecord, LSTMEstimate, TokenEstimate


@dataclass(frozen=True, kw_only=True)
class LayerSim(JsonRecord):
    """One layer alone on the mat-vec top under Verilator (the flow's sim stage): vectors with gaps
    and stalls plus clean ones, the clean first vector's latency measured and modelled."""
    layer: str
    vectors: int
    mismatches: int
    cycles_measured: int
    cycles_model: int
    busy_cycles: dict  # unit -> busy cycles over the clean run, and "cycles"
    wall_seconds: float


@dataclass(frozen=True, kw_only=True)
class LSTMSim(JsonRecord):
    """The whole LSTM token by token on the LSTM top against the golden integer LSTM."""
    tokens: int
    sequences: int
    mismatches: int
    cycles_per_step_measured: tuple  # the distinct step intervals of the clean run
    cycles_per_step_model: int
    wall_seconds: float

    @property
    def cycle_model_matches_rtl(self) -> bool:
        return list(self.cycles_per_step_measured) == [self.cycles_per_step_model]


@dataclass(frozen=True, kw_only=True)
class Verification(JsonRecord):
    passed: bool
    vectors: int
    mismatches: int
    cycle_model_matches_rtl: bool
    simulator: str
    per_layer: tuple = ()  # LayerSim each
    _typed = {"per_layer": (LayerSim, "many")}


@dataclass(frozen=True, kw_only=True)
class PerVector(JsonRecord):
    """One input vector through every layer, one after another, weights resident."""
    cycles: int  # from idle
    clock_mhz: float
    latency_us: float
    energy_nj: float
    interval_cycles: int  # streaming, vectors back to back
    power_mw: float  # streaming


@dataclass(frozen=True, kw_only=True)
class LayerRow(JsonRecord):
    name: str
    shape: tuple  # (m, n)
    cycles: int
    interval_cycles: int
    phase_cycles: dict  # unit/phase -> busy cycles per vector
    energy_pj: float
    energy_breakdown: dict  # part -> pJ per vector


@dataclass(frozen=True, kw_only=True)
class LSTMReport(JsonRecord):
    """The LSTM on chip: what the simulation measured and what the estimator prices per token.
    report.json holds both flat (the simulation's fields, ``passed``, ``cycle_model_matches_rtl``,
    then the estimate's without its per-layer list)."""
    sim: LSTMSim
    estimate: LSTMEstimate

    @property
    def passed(self) -> bool:
        return self.sim.mismatches == 0

    def to_json(self) -> dict:
        est = {k: v for k, v in self.estimate.to_json().items() if k != "layers"}
        return {**self.sim.to_json(), "passed": self.passed,
                "cycle_model_matches_rtl": self.sim.cycle_model_matches_rtl, **est}


@dataclass(frozen=True, kw_only=True)
class FlowReport(JsonRecord):
    """``doping flow``'s report: verification, compression, accuracy, hardware per vector and per
    layer, per token, the LSTM, with the library and corner the silicon figures rest on."""
    pack: str
    config: AccelConfig
    training: dict | None  # how the model was trained (None for a given pack)
    verification: Verification
    compression: dict  # the pack's totals (doping.pack.summary)
    accuracy: dict  # test perplexities the export measured, by kind
    per_vector: PerVector
    sram_kib: float
    area_mm2: float
    silicon_basis: str
    dense_energy_nj: float
    energy_saving_vs_dense: float
    layers: tuple  # LayerRow each
    area_breakdown_mm2: dict
    sram_bits: dict
    per_token: TokenEstimate | None = None
    lstm: LSTMReport | None = None
    training_curve: list | None = None  # per epoch: epoch, train_ppl, valid_ppl
    outputs: dict | None = None  # verilog, report, pack paths

    @property
    def passed(self) -> bool:
        return self.verification.passed

    def to_json(self) -> dict:
        out = super().to_json()
        if self.per_token is not None:  # the per-layer costs are in ``layers``
            out["per_token"] = {k: v for k, v in out["per_token"].items() if k != "layers"}
        return out


__all__ = ["FlowReport", "LSTMReport", "LSTMSim", "LayerRow", "LayerSim", "PerVector", "Verification"]
