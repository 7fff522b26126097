"""The accelerator's architecture spec, in plain Python (no Amaranth, no torch): the memory map
(every memory's banks, depth, width and regions), the register file, the load-word format, the
payload formats of the data streams, the overlay entry format and the pipeline constants that fix the cycle counts (docs/hardware.md).

The config (``AccelConfig.memories``), the generator (hw/), the loader, the estimator, the
simulator and the testbenches import these; nothing else computes a memory size, packs a load word
or a stream beat, or restates a pipeline depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from doping.compression import index_bits as bits_for

if TYPE_CHECKING:
    from doping.config import AccelConfig


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---- load stream -------------------------------------------------------------------------------
#: Load word, LSB first: ``sel`` (which memory, or the register file), ``addr`` (the bank in the
#: high bits, the word in the bank in the low ``Memory.addr_bits``), ``data``.
LOAD_SEL_BITS, LOAD_ADDR_BITS, LOAD_DATA_BITS = 4, 24, 64
LOAD_WORD_BITS = LOAD_SEL_BITS + LOAD_ADDR_BITS + LOAD_DATA_BITS
#: Bytes of one load word on a byte-wide bus (the AXI IP's ``s_axis_load_tdata``, load images):
#: the word in the low bits, little-endian, upper bits zero.
LOAD_WORD_BYTES = (LOAD_WORD_BITS + 7) // 8
SEL_REG, SEL_A, SEL_B, SEL_OVERLAY, SEL_ROWMAP = 0, 1, 2, 3, 4
#: LSTM top only (config lstm_cell): gate bias, per-layer register words, activation tables.
SEL_BIAS, SEL_LAYER_REGS, SEL_GATE_LUT, SEL_CELL_LUT = 5, 6, 7, 8
#: The mat-vec top's memories a load word's ``sel`` writes (``addr``: bank, then word; ``Memory.address``).
LOAD_TARGETS = {SEL_A: "a", SEL_B: "b", SEL_OVERLAY: "overlay", SEL_ROWMAP: "row_map"}


def pack_load_word(sel: int, addr: int, data: int) -> int:
    """One load-stream beat as an integer (``sel`` in the low bits, then ``addr``, then ``data``)."""
    return sel | (addr << LOAD_SEL_BITS) | (data << (LOAD_SEL_BITS + LOAD_ADDR_BITS))


# ---- data streams ------------------------------------------------------------------------------
#: Bits of one element on the x, y, tok and h streams (two's complement int8).
ELEMENT_BITS = 8
_ELEMENT_MASK = (1 << ELEMENT_BITS) - 1


def _signed(v: int) -> int:
    return v - (1 << ELEMENT_BITS) if v >> (ELEMENT_BITS - 1) & 1 else v


def x_beats(x, w: int) -> list[int]:
    """One int8 vector as x-stream payloads (``hw.streams.x_layout``): ``w`` elements a beat,
    element k of a beat in bits 8k..8k+7, the last beat padded with zeros."""
    x = [int(v) & _ELEMENT_MASK for v in x] + [0] * (-len(x) % w)
    return [sum(v << (ELEMENT_BITS * k) for k, v in enumerate(x[i:i + w])) for i in range(0, len(x), w)]


def y_beat(payload: int, w: int) -> tuple[list[int], int]:
    """A y-stream payload (``hw.streams.y_layout``): its ``w`` int8 outputs and ``last`` (the bit
    above them)."""
    return h_elements(payload, w), (payload >> (ELEMENT_BITS * w)) & 1


def token_beats(x, first: bool, w: int) -> list[int]:
    """One token's int8 input vector as tok-stream payloads of the LSTM top (``hw.streams.token_layout``):
    ``w`` elements a beat as on x (``x_beats``; the LSTM top needs ``w`` to divide the input
    size), and above them ``first`` on every beat of a sequence's first token (its state starts
    from zero)."""
    return [beat | (int(first) << (ELEMENT_BITS * w)) for beat in x_beats(x, w)]


def h_elements(payload: int, w: int) -> list[int]:
    """An h-stream payload of the LSTM top (``hw.streams.h_layout``): ``w`` int8 elements of the
    last layer's h, element k in bits 8k..8k+7."""
    return [_signed((payload >> (ELEMENT_BITS * k)) & _ELEMENT_MASK) for k in range(w)]


def lstm_alignment_problem(inputs: int, hidden: int, w: int) -> str | None:
    """Why an LSTM layer with ``inputs`` inputs besides h and ``hidden`` units cannot run on an
    LSTM top of ``w`` elements a beat (a beat of [x; h] and of the gate rows must lie within one
    part: x or h, and one gate block), or None."""
    if inputs % w or hidden % w:
        return (f"inputs {inputs} and hidden size {hidden} must be multiples of stream_bytes {w} (a beat may "
                "not straddle x and h, or two gate blocks)")
    return None


#: Register file: index -> name. All are 32-bit, written before the first vector. ``kp_off`` = 1:
#: the layer has no Kronecker part (the GEMM engine passes every vector at once, the join adds 0).
#: ``layer``: which resident layer's region of the weight memories the units read.
REGS = ("order", "m1", "n1", "m2", "n2", "n", "m", "t_mult", "t_shift", "ov_mult", "ov_shift",
        "y_mult", "y_shift", "kp_off", "layer")
REG_INDEX = {name: i for i, name in enumerate(REGS)}
#: Cell registers of one LSTM layer (the upper half of its layer_regs words, in this order):
#: hidden size H, inputs I besides h, the three requantisations of the cell, and ``last`` = 1 on
#: the stack's last layer (its h leaves on the output stream; the next layer is layer 0 of the
#: next token).
CELL_REGS = ("hidden", "inputs", "cell_mult", "cell_shift", "h_mult", "h_shift", "out_mult", "out_shift", "last")
CELL_REG_INDEX = {name: i for i, name in enumerate(CELL_REGS)}
#: Register words per resident layer of the LSTM top: the mat-vec's (``REGS``), each beside one
#: cell register word (``CELL_REGS``) in the upper 32 bits.
LAYER_REG_WORDS = 16


@dataclass(frozen=True)
class OverlayField:
    """Bit positions of one overlay entry word (LSB first: col, slot, val (int8), first, end)."""

    col_bits: int
    slot_bits: int

    @property
    def width(self) -> int:
        return self.col_bits + self.slot_bits + 8 + 2

    def pack(self, col: int, slot: int, val: int, first: int, end: int) -> int:
        c, s = self.col_bits, self.slot_bits
        return col | (slot << c) | ((val & 0xFF) << (c + s)) | (first << (c + s + 8)) | (end << (c + s + 9))


def overlay_field(cfg: AccelConfig) -> OverlayField:
    return OverlayField(bits_for(cfg.max_n), bits_for(ov_acc_depth(cfg)))


def rows_per_lane_bound(m: int, cfg: AccelConfig) -> int:
    """Rows per lane the row-to-lane assignment needs at most for ``m`` output rows: ceil(rows
    of a lane set / lanes per set) (lane set w owns rows i = w mod W)."""
    return ceil_div(ceil_div(m, cfg.stream_bytes), cfg.lanes // cfg.stream_bytes)


def ov_acc_depth(cfg: AccelConfig) -> int:
    """Row sums a lane holds per batch: a power of two covering ``rows_per_lane_bound(max_m)``."""
    return 1 << bits_for(rows_per_lane_bound(cfg.max_m, cfg))


# ---- memory map --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Memory:
    """One memory of the design: ``banks`` x ``depth`` words of ``width`` bits.

    layer_depth: words per resident layer's region (weight memories: region k at k * layer_depth,
    the region index the address's high part); None for memories that hold no weights.
    halves: double-buffered by the address MSB (one vector or batch written while the other is
    read), so one vector or batch has ``depth // 2`` words a bank.
    """

    banks: int
    depth: int
    width: int
    layer_depth: int | None = None
    halves: bool = False

    @property
    def bits(self) -> int:
        return self.banks * self.depth * self.width

    @property
    def addr_bits(self) -> int:
        """Word address bits in a bank (the load word's bank index sits above them)."""
        return bits_for(self.depth)

    @property
    def bank_bytes(self) -> int:
        """Bytes of one bank (one SRAM macro's capacity)."""
        return self.depth * self.width // 8

    @property
    def per_layer(self) -> int:
        """Words a bank holds for one layer: its region, a half, or all of it."""
        if self.layer_depth is not None:
            return self.layer_depth
        return self.depth // 2 if self.halves else self.depth

    def address(self, bank: int, word: int) -> int:
        """The load word's ``addr`` of ``word`` in ``bank``."""
        return (bank << self.addr_bits) | word

    def as_dict(self) -> dict:
        out = {"banks": self.banks, "depth": self.depth, "width": self.width}
        if self.layer_depth is not None:
            out["layer_depth"] = self.layer_depth
        return {**out, "bits": self.bits, "addr_bits": self.addr_bits}


def bank_depth(entries: int, banks: int) -> int:
    """Words a bank needs for ``entries`` spread evenly over ``banks``, as a power of two."""
    return 1 << bits_for(ceil_div(entries, banks))


def memory_map(cfg: AccelConfig) -> dict[str, Memory]:
    """Every memory of the design, exactly as hw/ instantiates it. Bank depths are powers of two
    sized for an evenly tiled matrix; ``AccelConfig.shortfalls`` checks the tiling of an actual
    layer."""
    r, c, l, w, nb = cfg.rows, cfg.cols, cfg.lanes, cfg.stream_bytes, cfg.batch
    act = max(cfg.max_n, cfg.max_intermediate) * nb  # a batch's X, or its first GEMM's result
    ov_depth = ov_acc_depth(cfg)
    field = OverlayField(bits_for(cfg.max_n), bits_for(ov_depth))

    def weights(banks, layer_depth, width):
        return Memory(banks, cfg.resident_layers * layer_depth, width, layer_depth=layer_depth)

    mems = {
        "a": weights(r, bank_depth(cfg.max_factor, r), 8),
        "b": weights(c, bank_depth(cfg.max_factor, c), 8),
        # R banks of W sub-banks (element address mod W): a beat's run of one bank in one cycle
        # (act_p, act_q: X' of one batch is written while the first GEMM reads the other's; the
        # intermediate uses the first half)
        "act_p": Memory(r * w, 2 * max(bank_depth(act, r) // w, 1), 8, halves=True),
        "act_q": Memory(c, 2 * bank_depth(act, c), 8, halves=True),  # X striped by flat index (AX)
        # one vector's K is written while the previous one's is read
        "kbuf": Memory(c, 2 * bank_depth(cfg.max_m, c), 32, halves=True),  # K striped by flat index
        "overlay": weights(l, bank_depth(cfg.max_nnz + l, l), field.width),
        # two banks per lane (one per batch parity): the lanes fill one batch's row sums while SEND
        # reads the other's; a word holds the B sums of a row (vector b in bits 32b ..)
        "ov_acc": Memory(2 * l, ov_depth, 32 * nb),
        # a bank per vector of a batch (a beat a word): RECV fills a batch while the lanes read the
        # one before, a word of every vector a cycle
        "x_buf": Memory(nb, 2 << bits_for(ceil_div(cfg.max_n, w)), 8 * w, halves=True),
        "row_map": weights(w, 1 << bits_for(ceil_div(cfg.max_m, w)), bits_for(l) + field.slot_bits),  # bank i mod W
    }
    if cfg.lstm_cell:
        # the cell unit's W lanes: lane k holds gate rows, units and h elements k mod W (word = index // W);
        # the activation tables once per lane (one read a lane a cycle, every copy written at once)
        hw = 1 << bits_for(ceil_div(cfg.max_hidden, w))  # words of a sequence's state in a lane
        hd = hw * (1 << cfg.batch_bits)  # per layer: H_max per sequence
        mems.update({
            "bias": weights(w, 1 << bits_for(ceil_div(cfg.max_m, w)), 32),  # row i: bank i mod W
            "layer_regs": weights(1, LAYER_REG_WORDS, 64),  # per layer: mat-vec | cell register words
            "gate_lut": weights(w, 2 * 256, 16),  # sigmoid, then tanh, of the int8 pre-activation
            "cell_lut": weights(w, 256, 16),  # tanh of the requantised cell state
            "gbuf": Memory(3 * w, hw, 16),  # i, f, g until o: block k, lane t in bank k * W + t
            "c_state": weights(w, hd, 32),
            "h_state": weights(w, hd, 8),
            "h_next": Memory(w, hd, 8),  # this layer's h for the next layer
        })
    return mems


# ---- pipeline constants (the cycle model and the RTL share them) -------------------------------
#: Units, as reported on the ``status`` bits (bit i: unit i busy; the cocotb monitor counts them).
UNITS = ("RECV", "GEMM", "GATHER", "SEND")
#: Phases of one vector (the cycle model's ``Schedule.phases``, reports' per-phase cycles): x in,
#: the two Kronecker GEMMs, the overlay gather, y out; each runs on one unit (``PHASE_UNIT``).
PHASES = ("RECV", "G1", "G2", "GATHER", "SEND")
PHASE_UNIT = {"RECV": "RECV", "G1": "GEMM", "G2": "GEMM", "GATHER": "GATHER", "SEND": "SEND"}
#: Register stages of the requantiser: its output is valid this many enabled cycles after its input.
REQUANT_STAGES = 2
#: Cycles from a y element's read (SEND issue) to the cycle it is on the y stream: row map and
#: kbuf read, row-sum read, the overlay requantiser, the saturating join, the output requantiser.
SEND_LATENCY = 2 + REQUANT_STAGES + 1 + REQUANT_STAGES
#: Extra cycles at the end of the first GEMM: its requantised drain writes land that much later.
G1_SETTLE = REQUANT_STAGES
#: Cycles from a pre-activation o row accepted to its unit's h on the LSTM cell's ``h`` stream:
#: the table read, the products f*c and i*g, the new c, the cell requantiser, the tanh_c read,
#: o*tc, the output requantisers.
CELL_LATENCY = 1 + 1 + 1 + REQUANT_STAGES + 1 + 1 + REQUANT_STAGES
#: SWITCH: the layer's register words, one a cycle, behind the register memory's read.
SWITCH_CYCLES = LAYER_REG_WORDS + 1
#: Cycles of one LSTM layer beside its gate mat-vec's latency (first x .. last y, the estimator's
#: ``schedule``): SWITCH, FEED's source stage, the cell's latency after the last o row, and WAIT
#: seeing the last result.
LAYER_OVERHEAD_CYCLES = SWITCH_CYCLES + 1 + CELL_LATENCY + 1
#: Per token: IDLE taking the token's first element.
TOKEN_OVERHEAD_CYCLES = 1


def send_latency(cfg: AccelConfig) -> int:
    """SEND_LATENCY, plus the bias stage (a saturating add after the join) of the LSTM top."""
    return SEND_LATENCY + cfg.lstm_cell


def tile_spacing(rows: int, cols: int, drain: int) -> int:
    """Fewest cycles between consecutive tiles' FEED starts with two shadow banks per PE: a
    drain (``drain`` cycles) may not overlap the previous one, and a bank must have drained
    (FLUSH rows + cols - 1, then DRAIN) before the tile after next captures into it."""
    return max(drain, ceil_div(rows + cols - 1 + drain, 2))


def vector_count_bits(cfg: AccelConfig) -> int:
    """Vector counters wrap at 2**this: more than the vectors in flight at once (RECV up to 2B
    ahead of the lanes, the lanes up to 2B ahead of SEND) and a multiple of the batch B."""
    return 2 + bits_for(2 * cfg.batch)
