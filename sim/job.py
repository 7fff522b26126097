"""What the runner asks of a cocotb testbench: one typed job per testbench, written as JSON to the
file named by ``DOPING_SIM_JOB`` (cocotb runs the testbench in the simulator's process, so the job
travels through a file). The testbench writes its result to the job's ``out`` file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
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
