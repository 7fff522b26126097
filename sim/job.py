"""What the runner asks of a cocotb testbench and what it answers: one typed job per testbench,
written as JSON to the file named by ``DOPING_SIM_JOB`` (cocotb runs the testbench in the
simulator's process, so the job travels through a file), and one typed result, which the
testbench writes to the job's ``out`` file and the runner completes (simulator, wall time, build,
cocotb's own verdict from its results.xml)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from doping.config import AccelConfig

ENV = "DOPING_SIM_JOB"


@dataclass(frozen=True, kw_only=True)
class _Job:
    config: dict  # AccelConfig fields
    seed: int = 0
    out: str = ""  # the result file the testbench writes

    @property
    def accel(self) -> AccelConfig:
        return AccelConfig(**self.config)


@dataclass(frozen=True, kw_only=True)
class MatvecJob(_Job):
    """``doping.sim.tb_accel``: random vectors through every layer of ``packs`` (or ``layer``);
    probabilities of an idle x/load cycle and of y.ready low; ``resident``: every layer loaded
    once into its own region."""

    packs: list
    vectors: int
    x_gap: float = 0.0
    y_stall: float = 0.0
    load_gap: float = 0.0
    reset_mid_vector: bool = False
    layer: str | None = None
    resident: bool = False


@dataclass(frozen=True, kw_only=True)
class LSTMJob(_Job):
    """``doping.sim.tb_lstm``: ``steps`` steps (one token of every lane) of random sequences
    through the LSTM of ``pack``; probabilities of an idle token cycle and of h.ready low; a
    cycle bound no correct run exceeds."""

    pack: str
    steps: int
    watchdog_cycles: int
    tok_gap: float = 0.0
    h_stall: float = 0.0


def write_job(job, path: Path) -> None:
    Path(path).write_text(json.dumps(asdict(job)))


def read_job(cls):
    """The job of type ``cls`` the runner left for this testbench."""
    return cls(**json.loads(Path(os.environ[ENV]).read_text()))


@dataclass(frozen=True, kw_only=True)
class _Result:
    mismatches: int  # vectors (tokens) whose output differs from the golden model's anywhere
    mismatch_examples: list = field(default_factory=list)  # the first few, one dict each
    # completed by the runner
    simulator: str = ""
    wall_seconds: float = 0.0  # the simulation's run, build excluded
    build: str = ""  # the build folder (cached per config, simulator and hw source)
    cocotb: dict = field(default_factory=dict)  # results.xml: {"tests", "failed"}
    waves: str | None = None  # folder of the waveform, when asked for

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict):
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class MatvecResult(_Result):
    """``doping.sim.tb_accel``: ``latency_cycles`` (each vector's first x beat accepted .. last y
    beat taken, inclusive, in order), ``total_cycles`` (cycles the output monitor ran over all layer
    runs: first x beat offered .. last y beat taken), ``interval_cycles`` (per layer run: the mean
    cycles between consecutive vectors' last y beats, None for a single vector), ``busy_cycles``
    (per layer run: cycles each unit was busy), ``packs`` (per layer run: pack, layer, vectors,
    mismatches). The estimator's ``latency_cycles`` and ``interval_cycles`` are the same measures."""
    vectors: int
    latency_cycles: list
    total_cycles: int
    interval_cycles: list
    busy_cycles: list
    packs: list

    @property
    def first_mismatch(self) -> dict | None:
        return self.mismatch_examples[0] if self.mismatch_examples else None


@dataclass(frozen=True, kw_only=True)
class LSTMResult(_Result):
    """``doping.sim.tb_lstm``: tokens (steps x lanes), sequences, and the cycles between
    consecutive steps' last h element; the runner adds the median interval (``cycles_per_step``,
    ``cycles_per_token`` = that / lanes) and the cycle model's figures."""
    tokens: int
    steps: int
    sequences: int
    step_intervals: list
    cycles_per_step: int | None = None
    cycles_per_token: float | None = None
    model_cycles_per_step: int | None = None
    model_cycles_per_token: float | None = None


def write_result(result: _Result, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.to_json()))


@dataclass(frozen=True, kw_only=True)
class AxiJob(_Job):
    """``doping.sim.tb_axi``: random vectors through the first layer of each of ``packs`` on the
    AXI4-Stream IP, driven by cocotbext-axi; probabilities of a pause of the x source, of the y
    sink and of the load source; ``reset_mid_vector``: ``aresetn`` pulsed half way through a vector first."""

    packs: list
    vectors: int
    x_gap: float = 0.0
    y_stall: float = 0.0
    load_gap: float = 0.0
    reset_mid_vector: bool = False


@dataclass(frozen=True, kw_only=True)
class AxiResult(_Result):
    """``doping.sim.tb_axi``: vectors compared, ``cycles`` (summed over the packs: the first x
    beat offered .. the last y frame received, the core bench's ``total_cycles``), and the sticky error flag
    ``err_x_tlast`` at the end (0: every x tlast matched its vector's end)."""
    vectors: int
    cycles: int
    err_x_tlast: int
    stalled_beats_checked: int = 0  # cycles m_axis_y held an offered beat (checked: valid and payload kept)
    stream_rule_violations: list = field(default_factory=list)
