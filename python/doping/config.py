"""The accelerator config: one frozen object feeding the RTL generator, the simulator and the
estimator (docs/hardware.md). ``check(layer)`` says exactly what of a layer does not fit."""

from __future__ import annotations

import functools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from doping.arch import Memory, ceil_div, memory_map
from doping.compression import index_bits as bits_for  # address bits for ``count`` locations (re-exported)
from doping.errors import DopingError


MAX_CAPACITY = 1 << 24  # largest value any integer config field may take
MAX_RESIDENT_LAYERS = 16
MAX_LSTM_BATCH = 16
#: The most memory words (banks x depth, over every memory) the Verilog generator is allowed to
#: build: it holds every word while converting (the ``large`` preset, 1.18 M words, takes 194 s and
#: 0.5 GB on the 2-core VM; time and memory grow with the words), so 4 M words is ~2 GB and ~10
#: minutes. Estimates have no such bound (docs/results.md, issue 33).
MAX_GENERATED_WORDS = 1 << 22
X_WINDOW = 16  # broadcast input window per gather lane, in elements (see ``AccelConfig.x_window``)
STREAM_BYTES = (1, 2, 4, 8)  # elements per beat the x and y streams may carry
BATCHES = (1, 2, 4, 8)  # vectors the mat-vec accelerator may take per pass of the first GEMM


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one generated accelerator.

    rows, cols: systolic array R x C of int8 MAC PEs (int32 accumulators).
    lanes: gather lanes L of the sparse-overlay unit.
    max_m, max_n: largest layer (outputs, inputs) the buffers hold.
    max_factor: largest factor (m1*n1 or m2*n2 entries) the A and B buffers hold.
    max_intermediate: largest intermediate (m1*n2 for AX, n1*m2 for XB) in entries.
    max_nnz: overlay capacity in entries (nonzeros plus one per empty row), over all lanes.
    resident_layers: layers whose weights (A, B, overlay, row map) are held at once, each in its
    own region of those memories sized by the capacities above; switching to a resident layer
    costs its register words only (hw/loader.register_words).
    lstm_cell: 1 = the LSTM top (hw/lstm.py): a bias stage in the join, the cell unit (activation
    tables, cell and hidden state of every resident layer, up to max_m // 4 hidden units) and the
    token sequencer; 0 = the mat-vec accelerator alone.
    lstm_batch: independent sequences B the LSTM top interleaves (each time step: one token of
    every sequence, their vectors back to back through each layer; state held per sequence).
    stream_bytes: int8 elements W per beat of the x and y streams (1, 2, 4 or 8): RECV writes W
    input elements a cycle, the broadcast fills W window slots of every lane a cycle, SEND finishes
    W outputs a cycle (W requantiser pipelines). A Kronecker layer needs W <= cols, and in XB order
    W <= n2 (``stream_problems``); lanes are grouped in W sets, set w owning rows i = w mod W.
    batch: vectors B per pass of the first Kronecker GEMM (1, 2, 4 or 8): B consecutive vectors'
    X side by side (AX: [X_0 | .. | X_B-1], n2*B columns) or stacked (XB: n1*B rows) go through
    the first GEMM at once, so the array sees B times the columns (rows) where n2 (n1) is small;
    the second GEMM, the gather and SEND stay per vector. The host sends vectors in multiples of
    B. The activation memories hold two batches' X' (one written while the first GEMM reads the
    other) and a batch's first-GEMM result, the input buffer 2B vectors. In AX order with W > 1
    a beat may not straddle rows of X: W divides n2.
    clock_mhz: target clock; tech_nm: technology node of the estimator's tables.
    Widths are fixed by docs/numerics.md: 8-bit data, 32-bit accumulators, 8-bit intermediate.
    """

    rows: int = 8
    cols: int = 8
    lanes: int = 64  # enough for the flagship layer at W = 1 (its balanced point is the "flagship" preset)
    max_m: int = 2600
    max_n: int = 1300
    max_factor: int = 4096
    max_intermediate: int = 4096
    max_nnz: int = 163840
    resident_layers: int = 1
    lstm_cell: int = 0
    lstm_batch: int = 1
    stream_bytes: int = 1
    batch: int = 1
    clock_mhz: float = 500.0
    tech_nm: int = 45

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "clock_mhz":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 1e5:
                    raise DopingError(f"accelerator config: clock_mhz must be a finite number in (0, 100000], "
                                      f"got {v!r:.60}")
            elif f.name == "lstm_cell":
                if isinstance(v, bool) or v not in (0, 1):
                    raise DopingError(f"accelerator config: lstm_cell must be 0 or 1, got {v!r:.60}")
            elif isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_CAPACITY:
                raise DopingError(f"accelerator config: {f.name} must be an integer in 1..{MAX_CAPACITY}, "
                                  f"got {v!r:.60}")
        if self.rows > 64 or self.cols > 64:
            raise DopingError(f"accelerator config: a {self.rows}x{self.cols} array is larger than the 64x64 supported")
        if self.lanes > 64:
            raise DopingError(f"accelerator config: {self.lanes} gather lanes exceed the 64 supported")
        if self.lstm_batch > MAX_LSTM_BATCH:
            raise DopingError(f"accelerator config: lstm_batch {self.lstm_batch} exceeds the {MAX_LSTM_BATCH} supported")
        if self.stream_bytes not in STREAM_BYTES:
            raise DopingError(f"accelerator config: stream_bytes must be one of {', '.join(map(str, STREAM_BYTES))}, "
                              f"got {self.stream_bytes}")
        if self.batch not in BATCHES:
            raise DopingError(f"accelerator config: batch must be one of {', '.join(map(str, BATCHES))}, "
                              f"got {self.batch}")
        if self.lstm_cell and self.batch != 1:
            raise DopingError("accelerator config: the LSTM top runs one vector per pass (its sequences are "
                              f"lstm_batch): it needs batch = 1, got {self.batch}")
        if self.lanes % self.stream_bytes:
            raise DopingError(f"accelerator config: {self.lanes} lanes do not split into stream_bytes = "
                              f"{self.stream_bytes} sets (one per output position of a beat)")
        if self.resident_layers > MAX_RESIDENT_LAYERS:
            raise DopingError(f"accelerator config: {self.resident_layers} resident layers exceed the "
                              f"{MAX_RESIDENT_LAYERS} supported")

    @functools.cached_property
    def memories(self) -> dict[str, Memory]:
        """Every memory of the design (``doping.arch.memory_map``), computed once per config."""
        return memory_map(self)

    @property
    def batch_bits(self) -> int:
        """Address bits of the sequence index in the LSTM state memories (none for one sequence)."""
        return bits_for(self.lstm_batch) if self.lstm_batch > 1 else 0

    @property
    def max_hidden(self) -> int:
        """Largest LSTM hidden size the cell unit holds (its gate layer has 4H outputs)."""
        return max(self.max_m // 4, 1)

    @property
    def x_window(self) -> int:
        """Input elements each gather lane can hold at once (registers, indexed by column mod
        x_window): how far the input broadcast may run ahead of the slowest lane. X_WINDOW, and
        W / 2 times that for W >= 4 elements a beat: a broadcast word takes W slots at once, and a
        window of only 16 / W words starves lanes that fall behind (docs/results.md)."""
        return X_WINDOW * max(1, self.stream_bytes // 2)

    def sram_bits(self) -> dict[str, int]:
        return {k: v.bits for k, v in self.memories.items()}

    def shortfalls(self, layer) -> list[tuple[str, int, int, str]]:
        """Everything of ``layer`` that does not fit: (what, needed, available, config field that
        would have to grow)."""
        from doping.hw.loader import lane_plan

        (m1, n1), (m2, n2) = layer.factor_shapes
        inter = m1 * n2 if layer.order == "AX" else n1 * m2
        mem = self.memories  # the memory map before the lane plan, which reads it
        plan = lane_plan(layer, self)
        entries = plan.entries
        out = []
        for what, need, have, field in (
            ("outputs m", layer.m, self.max_m, "max_m"), ("inputs n", layer.n, self.max_n, "max_n"),
            ("factor A entries", m1 * n1, self.max_factor, "max_factor"),
            ("factor B entries", m2 * n2, self.max_factor, "max_factor"),
            ("intermediate entries", inter, self.max_intermediate, "max_intermediate"),
            ("overlay entries (nonzeros + empty rows)", sum(len(e) for e in entries), self.max_nnz, "max_nnz"),
        ):
            if need > have:
                out.append((what, need, have, field))
        # per-bank depth limits, with the tiling of each matrix across banks
        per_lane = max(len(e) + 1 for e in entries)
        W, nb = self.stream_bytes, self.batch
        ax = layer.order == "AX"
        for name, need, field in (("a", ceil_div(m1, self.rows) * n1, "max_factor"),
                                  ("b", ceil_div(m2, self.cols) * n2, "max_factor"),
                                  # AX: P' = A [X_0 | ..] (m1 rows of n2*B); XB: X' (n1*B rows of n2)
                                  ("act_p", ceil_div(ceil_div(m1, self.rows) * n2 * nb if ax
                                                     else ceil_div(n1 * nb, self.rows) * n2, W), "max_intermediate"),
                                  ("act_q", ceil_div(layer.n * nb, self.cols) if ax
                                   else ceil_div(m2, self.cols) * n1 * nb, "max_intermediate"),
                                  ("kbuf", ceil_div(layer.m, self.cols), "max_m"), ("overlay", per_lane, "max_nnz"),
                                  ("ov_acc", plan.rows_per_lane(self), "max_m")):
            have = mem[name].per_layer
            if need > have:
                out.append((f"{name} bank depth", need, have, field))
        return out

    def stream_problems(self, layer) -> list[str]:
        """Why ``layer``'s Kronecker part cannot use this config's W-element beats (no capacity
        fixes these): a beat's elements go to distinct banks of the C-banked act_q (AX) and kbuf,
        and in XB order to at most two rows of X."""
        W = self.stream_bytes
        if W == 1 or not layer.has_kp:
            return []
        (_, _), (_, n2) = layer.factor_shapes
        out = []
        if W > self.cols:
            out.append(f"stream_bytes {W} > cols {self.cols} (a beat spreads over distinct column banks)")
        if layer.order == "XB" and n2 < W:
            out.append(f"n2 {n2} < stream_bytes {W} (an XB beat may span at most two rows of X)")
        if layer.order == "AX" and self.batch > 1 and n2 % W:
            out.append(f"n2 {n2} is not a multiple of stream_bytes {W} at batch {self.batch} (an AX beat "
                       "may not straddle rows of X: they are n2 * batch apart)")
        return out

    def generation_problems(self) -> list[str]:
        """Why the RTL generator will not build this config (empty: it will). Estimating it is fine."""
        words = sum(m.banks * m.depth for m in self.memories.values())
        if words > MAX_GENERATED_WORDS:
            big = sorted(self.memories.items(), key=lambda kv: -kv[1].banks * kv[1].depth)[:2]
            return [f"its memories hold {words:,} words, more than the {MAX_GENERATED_WORDS:,} the generator builds "
                    f"(largest: {', '.join(f'{k} {m.banks}x{m.depth}' for k, m in big)}); lower max_nnz, max_m, "
                    "max_n, max_factor, max_intermediate or resident_layers"]
        return []

    def check_buildable(self) -> None:
        """Raise DopingError, before any elaboration, when the generator will not build this config."""
        problems = self.generation_problems()
        if problems:
            raise DopingError("accelerator config cannot be generated: " + "; ".join(problems))

    def check(self, layer) -> None:
        """Raise DopingError naming everything of ``layer`` that does not fit this config."""
        short = self.shortfalls(layer)
        problems = [f"{what} {need} > {have}" for what, need, have, _ in short]
        problems += self.stream_problems(layer)
        if problems:
            fix = sorted({field for *_, field in short})
            how = (f"raise {', '.join(fix)} in a config file, or " if fix else "") + "use --config fit (the default " \
                "design sized to the pack)"
            raise DopingError(f"layer {layer.name!r} ({layer.m}x{layer.n}) does not fit the accelerator config: "
                              + "; ".join(problems) + f" — {how}")

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)


PRESETS = {
    "default": AccelConfig(),
    "minimal": AccelConfig(rows=2, cols=2, lanes=1, max_m=64, max_n=64, max_factor=64, max_intermediate=64,
                           max_nnz=1024),
    # `doping dse` on the flagship 2600x1300 @25x layer at the rule's factor shapes: most vectors/s
    # per mm^2 when streaming (docs/results.md). Its W = 8 at B = 4 needs n2 >= 8 (XB) or 8 | n2 (AX)
    # (``stream_problems``), so it refuses the PTB packs (n2 = 5) and dense and LMF layers (n2 = 1),
    # and the LSTM top needs B = 1: ``default`` stays the W = 1, B = 1 design that takes them all.
    "flagship": AccelConfig(rows=16, cols=16, lanes=64, stream_bytes=8, batch=4),
    "large": AccelConfig(rows=16, cols=16, lanes=32, max_m=4096, max_n=4096, max_factor=16384,
                         max_intermediate=16384, max_nnz=524288),
}


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def load_config(spec: str | None) -> AccelConfig:
    """A preset name, or a .json/.toml file of AccelConfig fields; None is the default."""
    if spec is None:
        return PRESETS["default"]
    if spec in PRESETS:
        return PRESETS[spec]
    p = Path(spec)
    if not p.is_file():
        raise DopingError(f"accelerator config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        if p.stat().st_size > 1 << 20:
            raise DopingError(f"accelerator config {p} is larger than 1 MiB")
        text = p.read_text()
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as e:
        raise DopingError(f"accelerator config {p} is not valid {p.suffix[1:] or 'JSON'}: {e}") from None
    except RecursionError:
        raise DopingError(f"accelerator config {p} is nested too deeply") from None
    except OSError as e:
        raise DopingError(f"cannot read accelerator config {p}: {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise DopingError(f"accelerator config {p} must be an object of fields, got {type(data).__name__}")
    names = {f.name for f in fields(AccelConfig)}
    unknown = set(data) - names
    if unknown:
        raise DopingError(f"accelerator config {p}: unknown fields {', '.join(sorted(unknown))}")
    return AccelConfig(**data)
