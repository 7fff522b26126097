"""Typed results of the estimator: one layer on one design (``LayerEstimate``), a model's layers
run one after another (``ModelEstimate``), a multi-layer model per token (``TokenEstimate``) and the
LSTM top per token (``LSTMEstimate``). Each has ``to_json()`` (plain dicts and lists, the shape
``doping estimate --json`` prints) and ``from_json()`` (its inverse, for cached flow stages).

Units are in the field names: cycles, ``_pj`` picojoules, ``_nj`` nanojoules, ``_us`` microseconds,
``_mw`` milliwatts, ``_mm2`` square millimetres at the config's technology node, ``_bits``/``_kib``
memory sizes. Maps keyed by memory or unit name (SRAM sizes, energy and area breakdowns, phase
cycles) stay dicts; everything with fixed fields is a dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from doping.config import AccelConfig


def to_plain(v):
    """``v`` as plain dicts, lists and scalars (JSON-ready): a record by its ``to_json``, a config
    by its fields."""
    if isinstance(v, JsonRecord):
        return v.to_json()
    if isinstance(v, AccelConfig):
        return v.as_dict()
    if dataclasses.is_dataclass(v):
        return {f.name: to_plain(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: to_plain(x) for k, x in v.items()}
    return v


class JsonRecord:
    """The base of every typed result (a frozen dataclass): ``to_json`` field by field,
    ``from_json`` its inverse for the fields named in ``_typed``."""
    #: fields holding typed values: name -> (type, "one" | "many" | "optional")
    _typed: dict = {}

    def to_json(self) -> dict:
        return {f.name: to_plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict):
        kw = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v, how = d[f.name], cls._typed.get(f.name)
            if how is not None and v is not None:
                typ, arity = how
                conv = (lambda x: AccelConfig(**x)) if typ is AccelConfig else typ.from_json
                v = tuple(conv(x) for x in v) if arity == "many" else conv(v)
            kw[f.name] = v
        return cls(**kw)


@dataclass(frozen=True, kw_only=True)
class LayerInfo(JsonRecord):
    name: str
    shape: tuple  # (m, n)
    factors: tuple | None  # ((m1, n1), (m2, n2)), None without a Kronecker part
    order: str  # "AX" or "XB"
    nnz: int  # overlay nonzeros


@dataclass(frozen=True, kw_only=True)
class Utilisation(JsonRecord):
    """Busy fractions (0-1) per vector: ``array_kp``: MAC slots used in the Kronecker phases;
    ``lanes``: overlay entries over lanes x gather cycles; ``interval``: each unit's busy cycles
    over the steady-state interval (the largest binds)."""
    array_kp: float
    lanes: float
    interval: dict  # unit name -> fraction


@dataclass(frozen=True, kw_only=True)
class Breakdown(JsonRecord):
    energy_pj: dict  # part -> pJ per vector
    area_mm2: dict  # part -> mm^2


@dataclass(frozen=True, kw_only=True)
class LayerEstimate(JsonRecord):
    """One layer on one config (``estimate.model.estimate``)."""
    layer: LayerInfo
    config: AccelConfig
    cycles: int  # one vector from idle (= latency_cycles)
    latency_cycles: int
    interval_cycles: int  # steady state, vectors back to back
    bound: int  # the busiest resource's cycles (cycles.Schedule.bound)
    phase_cycles: dict  # unit -> busy cycles per vector
    utilisation: Utilisation
    clock_mhz: float  # the lower of the config's clock and the netlist's estimate
    fmax_estimate_mhz: float
    latency_us: float
    throughput_vectors_per_s: float
    sram_bits: dict
    sram_kib: dict
    accesses: dict  # memory -> {"reads", "writes"} per vector
    energy_pj: float  # per vector
    area_mm2: float
    power_mw: float  # streaming: one vector's energy per interval
    breakdown: Breakdown
    _typed = {"layer": (LayerInfo, "one"), "config": (AccelConfig, "one"), "utilisation": (Utilisation, "one"),
              "breakdown": (Breakdown, "one")}


@dataclass(frozen=True, kw_only=True)
class TokenLayer(JsonRecord):
    layer: str
    load_cycles: int
    switch_cycles: int
    run_cycles: int
    cycles: int
    load_energy_pj: float
    run_energy_pj: float


@dataclass(frozen=True, kw_only=True)
class TokenEstimate(JsonRecord):
    """A multi-layer model per token (``estimate.model.per_token``)."""
    weights: str  # how the weights are held (resident, or reloaded per token), in words
    resident: bool
    cycles_per_token: int
    energy_per_token_pj: float
    latency_per_token_us: float
    power_mw: float
    resident_cycles_per_token: int  # what it would take with every layer resident
    resident_energy_per_token_pj: float
    layers: tuple = ()  # TokenLayer each
    _typed = {"layers": (TokenLayer, "many")}


@dataclass(frozen=True, kw_only=True)
class LSTMLayerCost(JsonRecord):
    layer: str
    hidden: int
    matvec_cycles: int
    cycles: int
    matvec_energy_pj: float
    cell_energy_pj: float
    reload_energy_pj: float


@dataclass(frozen=True, kw_only=True)
class LSTMEstimate(JsonRecord):
    """The LSTM stack per token on the LSTM top (``estimate.lstm.lstm_per_token``)."""
    weights: str
    resident: bool
    batch: int  # sequences interleaved per step (lstm_batch)
    cycles_per_step: int
    cycles_per_token: float
    energy_per_token_pj: float
    latency_per_token_us: float
    tokens_per_s: float
    power_mw: float
    clock_mhz: float
    area_mm2: float
    layers: tuple = ()  # LSTMLayerCost each
    _typed = {"layers": (LSTMLayerCost, "many")}


@dataclass(frozen=True, kw_only=True)
class ModelEstimate(JsonRecord):
    """A model's layers run one after another on one config (``estimate.model.combine``): cycles,
    energy and interval add up, area and SRAM are the one design's. ``per_token`` (a multi-layer
    model) and ``lstm`` (an LSTM pack on the LSTM top) when asked for; ``method``/``ratio``/
    ``params`` when it prices a synthetic (shape, ratio, method) point."""
    cycles: int
    latency_cycles: int
    interval_cycles: int
    utilisation: Utilisation
    energy_pj: float
    area_mm2: float
    power_mw: float
    latency_us: float
    throughput_vectors_per_s: float
    clock_mhz: float
    sram_bits: dict
    sram_kib: dict
    breakdown: Breakdown
    config: AccelConfig
    layers: tuple = ()  # LayerEstimate each
    per_token: TokenEstimate | None = None
    lstm: LSTMEstimate | None = None
    method: str | None = None
    ratio: float | None = None
    params: int | None = None
    _typed = {"utilisation": (Utilisation, "one"), "breakdown": (Breakdown, "one"), "config": (AccelConfig, "one"),
              "layers": (LayerEstimate, "many"), "per_token": (TokenEstimate, "one"), "lstm": (LSTMEstimate, "one")}

    @property
    def cycles_per_token(self):
        """The LSTM's cycles per token, else the multi-layer model's, else None."""
        t = self.lstm or self.per_token
        return None if t is None else t.cycles_per_token

    def to_json(self) -> dict:
        return super().to_json() | {"cycles_per_token": self.cycles_per_token}


@dataclass(frozen=True, kw_only=True)
class FlowEstimate(JsonRecord):
    """The flow's estimate stage: every layer, its dense counterpart on the same design, per token,
    the LSTM."""
    layers: tuple  # LayerEstimate each
    dense: tuple  # ModelEstimate each
    per_token: TokenEstimate | None = None
    lstm: LSTMEstimate | None = None
    _typed = {"layers": (LayerEstimate, "many"), "dense": (ModelEstimate, "many"),
              "per_token": (TokenEstimate, "one"), "lstm": (LSTMEstimate, "one")}


@dataclass(frozen=True, kw_only=True)
class DsePoint(JsonRecord):
    """One design point of ``doping dse``: the array, lanes, stream width and batch, and the
    estimator's figures for the layer on it (buffers fitted to the layer)."""
    rows: int
    cols: int
    lanes: int
    stream_bytes: int
    batch: int
    cycles: int  # one vector from idle
    latency_us: float
    interval_cycles: float  # streaming
    energy_nj: float  # per vector
    area_mm2: float
    power_mw: float
    edp: float  # energy (pJ) x latency (us)
    busy: dict  # unit -> busy share of the interval, the largest first
    binding: str  # the unit with the largest share

    @property
    def square(self) -> bool:
        return self.rows == self.cols

    @property
    def design(self) -> dict:
        """The fields that make the point a config (``dataclasses.replace(base, **p.design)``)."""
        return {k: getattr(self, k) for k in ("rows", "cols", "lanes", "stream_bytes", "batch")}


@dataclass(frozen=True, kw_only=True)
class DseResult(JsonRecord):
    """``doping dse``'s answer (``estimate.dse.dse``): every point estimated, the energy x delay
    optimum, the Pareto front (energy against latency), the smallest area meeting the latency
    bound, the balanced point (least interval x area) overall and among square arrays, and how
    the search went (points, candidates bounded and pruned, seconds)."""
    points: tuple  # DsePoint each
    best_edp: DsePoint
    pareto: tuple  # DsePoint each, by latency
    smallest_area_meeting_latency: DsePoint | None
    latency_bound_us: float | None
    balanced: DsePoint
    square_balanced: DsePoint
    search: dict
    silicon_basis: str
    _typed = {"points": (DsePoint, "many"), "best_edp": (DsePoint, "one"), "pareto": (DsePoint, "many"),
              "smallest_area_meeting_latency": (DsePoint, "one"), "balanced": (DsePoint, "one"),
              "square_balanced": (DsePoint, "one")}


__all__ = ["DsePoint", "DseResult", "Breakdown", "FlowEstimate", "LSTMEstimate", "LSTMLayerCost", "LayerEstimate", "LayerInfo",
           "ModelEstimate", "TokenEstimate", "TokenLayer", "Utilisation"]
