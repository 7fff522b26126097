"""The LSTM cell unit (docs/numerics.md §9, golden ``doping.golden.lstm.cell``): int8 pre-activations
in, one per cycle, in the gate layer's row order (i, f, g, o; H rows each); per hidden unit j,
once its o row arrives, the new cell state and h out.

Rows of blocks i, f and g are looked up in the gate table (sigmoid, or tanh for g) and held in
``gbuf`` (int16 Q0.15) until the o row of the same unit arrives; then

  c   = sat32(shift_round(f*c, 15) + shift_round(i*g, 15))     written back to the cell state
  tc  = TANH_C[requant(c, cell_rq, 8)]
  h   = requant(o*tc, h_rq, 8), h_out = requant(o*tc, out_rq, 8)

leave on ``h`` with the unit's index and sequence. The pipeline advances as a whole when ``h``
is taken (or empty); ``p.ready`` is that advance. Vectors of the config's ``lstm_batch``
sequences follow one another (sequence 0, 1, ..., then 0 again); the tables are per resident
layer (``region``), the cell state per layer and sequence; bit b of ``fresh`` = 1 reads sequence
b's cell state as 0 (the first step of a sequence).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import REQUANT_STAGES
from doping.config import AccelConfig, bits_for
from doping.golden.lstm import Q
from doping.hw.memories import banks, region_address
from doping.hw.requant import requant, sat32
from doping.hw.streams import y_layout


def hidden_bits(cfg: AccelConfig) -> int:
    """Address bits of one word of a lane's state within a sequence (word = hidden unit // W)."""
    return bits_for(cfg.memories["gbuf"].depth)


def state_offset(cfg: AccelConfig, word, seq):
    """Offset of state word ``word`` (units W*word .. W*word + W-1, one per lane) of sequence
    ``seq`` within a layer's state (the sequence index above the word's bits, when the config
    interleaves several)."""
    u = word[:hidden_bits(cfg)]
    return Cat(u, seq[:cfg.batch_bits]) if cfg.batch_bits else u


def cell_output(cfg: AccelConfig) -> data.StructLayout:
    """One word of W hidden units' results (unit W*index + t in element t): h at its layer's input
    scale (``own``, fed back), at the next layer's (``out``), the word's index and its sequence."""
    h8 = data.ArrayLayout(signed(8), cfg.stream_bytes)
    return data.StructLayout({"own": h8, "out": h8, "index": unsigned(hidden_bits(cfg)),
                              "seq": unsigned(max(cfg.batch_bits, 1))})


#: A table write from the load stream: ``which`` 0 = gate table (sigmoid then tanh), 1 = tanh_c.
TableWrite = data.StructLayout({"en": 1, "which": 1, "addr": unsigned(16), "data": signed(16)})


class LSTMCell(wiring.Component):
    """Ports: ``p`` int8 pre-activations in, W = ``stream_bytes`` rows a beat (the y stream; the
    layer's H a multiple of W, so a beat lies in one gate block); ``h`` results out, a word of W
    units a beat (``cell_output``); ``region``, ``fresh``, ``hidden`` (H) and the three
    requantisations (15-bit multiplier, 6-bit shift) are the running layer's constants, stable
    while it runs; ``table`` writes the activation tables (every lane's copy at once); ``busy``: a
    row is in the pipeline. Lane t of the W runs rows, units and state of index t mod W."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "p": In(stream.Signature(y_layout(cfg))),  # the accelerator's y stream
            "h": Out(stream.Signature(cell_output(cfg))),
            "region": In(bits_for(cfg.resident_layers)),
            "fresh": In(cfg.lstm_batch),
            "hidden": In(32),
            "cell_mult": In(15), "cell_shift": In(6),
            "h_mult": In(15), "h_shift": In(6),
            "out_mult": In(15), "out_shift": In(6),
            "table": In(TableWrite),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, mem = self.cfg, self.cfg.memories
        hb, W = hidden_bits(cfg), cfg.stream_bytes

        # bank t of each memory serves lane t (gbuf: block k's in bank k * W + t)
        glut = banks(m, "gate_lut", W, mem["gate_lut"].depth, signed(16))
        clut = banks(m, "cell_lut", W, mem["cell_lut"].depth, signed(16))
        gbuf = banks(m, "gbuf", 3 * W, mem["gbuf"].depth, signed(16), transparent=True)
        cst = banks(m, "c_state", W, mem["c_state"].depth, signed(32))
        for (wp, _), which in [*((g, 0) for g in glut), *((c, 1) for c in clut)]:
            m.d.comb += [wp.addr.eq(self.table.addr), wp.data.eq(self.table.data),
                         wp.en.eq(self.table.en & (self.table.which == which))]

        adv = Signal()
        m.d.comb += [adv.eq(~self.h.valid | self.h.ready), self.p.ready.eq(adv)]
        fire = self.p.valid & self.p.ready

        # ---- word counters: block (i, f, g, o), word j and sequence b of the next beat ----
        B = cfg.lstm_batch
        blk, j, b = Signal(2), Signal(hb + 1), Signal(range(max(B, 2)))
        with m.If(fire):
            with m.If(j == (self.hidden >> (W.bit_length() - 1)) - 1):
                m.d.sync += [j.eq(0), blk.eq(blk + 1)]
                with m.If(blk == 3):  # the vector's last beat: the next sequence's vector follows
                    m.d.sync += b.eq(Mux(b == B - 1, 0, b + 1))
            with m.Else():
                m.d.sync += j.eq(j + 1)

        in_flight = []  # every valid bit of the pipeline

        def delayed(sig, name, stages=REQUANT_STAGES):
            for s_ in range(stages):
                nxt = Signal.like(sig, name=f"{name}_d{s_}")
                with m.If(adv):
                    m.d.sync += nxt.eq(sig)
                sig = nxt
                if name.startswith("v"):
                    in_flight.append(sig)
            return sig

        # the control of each stage, shared by the lanes: 1 table read; 2 products (o beats only);
        # 3 new cell state; 4 cell requantised; 5 tanh_c read; 6 o * tanh_c; 7 h requantised
        v1, blk1, j1, b1 = delayed(fire, "v1", 1), delayed(blk, "blk1", 1), delayed(j, "j1", 1), delayed(b, "b1", 1)
        v2, j2, b2 = delayed(v1 & (blk1 == 3), "v2", 1), delayed(j1, "j2", 1), delayed(b1, "b2", 1)
        v3, j3, b3 = delayed(v2, "v3", 1), delayed(j2, "j3", 1), delayed(b2, "b3", 1)
        v6, j6, b6 = (delayed(x, n, REQUANT_STAGES + 2) for x, n in ((v3, "v6"), (j3, "j6"), (b3, "b6")))
        v7, j7, b7 = delayed(v6, "v7"), delayed(j6, "j7"), delayed(b6, "b7")
        ctl = {"blk": blk, "j": j, "b": b, "v1": v1, "blk1": blk1, "j1": j1, "b1": b1, "v3": v3, "j3": j3, "b3": b3}
        for t in range(W):
            ports = (glut[t][1], clut[t][1], [gbuf[k * W + t] for k in range(3)], cst[t])
            own, out = self._lane(m, t, adv, ctl, ports)
            m.d.comb += [self.h.payload.own[t].eq(own), self.h.payload.out[t].eq(out)]
        m.d.comb += [self.h.valid.eq(v7), self.h.payload.index.eq(j7), self.h.payload.seq.eq(b7),
                     self.busy.eq(Cat(*in_flight).any())]
        return m

    def _lane(self, m, t, adv, ctl, ports):
        """Lane ``t``'s data path (row t of each beat; ``ctl``: the stages' shared control,
        ``ports``: its gate table, tanh_c table, i/f/g buffers and cell state); returns its (own,
        out) h at the h register."""
        cfg = self.cfg
        glut_r, clut_r, gbuf, (c_w, c_r) = ports

        def reg(value, name, width):
            r = Signal(signed(width), name=f"{name}_l{t}")
            with m.If(adv):
                m.d.sync += r.eq(value)
            return r

        p = self.p.payload.data[t]
        code = Cat(p[:7], ~p[7])  # p + 128: the table index of an int8 code
        m.d.comb += [glut_r.addr.eq(region_address(cfg, "gate_lut", Cat(code, ctl["blk"] == 2), self.region)),
                     glut_r.en.eq(adv)]
        for _, rp in gbuf:
            m.d.comb += [rp.addr.eq(ctl["j"]), rp.en.eq(adv)]
        m.d.comb += [c_r.addr.eq(region_address(cfg, "c_state", state_offset(cfg, ctl["j"], ctl["b"]), self.region)),
                     c_r.en.eq(adv)]

        # stage 1: the table value of the row; i, f, g, c of its unit (for an o row)
        for k, (wp, _) in enumerate(gbuf):
            m.d.comb += [wp.addr.eq(ctl["j1"]), wp.data.eq(glut_r.data), wp.en.eq(adv & ctl["v1"] & (ctl["blk1"] == k))]
        c_prev = Mux(self.fresh.bit_select(ctl["b1"], 1), 0, c_r.data)
        i_, f_, g_ = (rp.data for _, rp in gbuf)

        # stage 2: the two products
        o2, fc, ig = reg(glut_r.data, "o2", 16), reg(f_ * c_prev, "fc", 48), reg(i_ * g_, "ig", 32)

        # stage 3: the new cell state, written back
        half = Const(1 << (Q - 1))
        c3 = reg(sat32(((fc + half) >> Q) + ((ig + half) >> Q)), "c3", 32)
        o3 = reg(o2, "o3", 16)
        m.d.comb += [c_w.addr.eq(region_address(cfg, "c_state", state_offset(cfg, ctl["j3"], ctl["b3"]), self.region)),
                     c_w.data.eq(c3), c_w.en.eq(adv & ctl["v3"])]

        # the cell requantiser, then the tanh_c table; then o * tanh_c
        c8 = requant(m, c3, self.cell_mult, self.cell_shift, 8, en=adv, name=f"rq_cell_l{t}")
        o5 = o3
        for s_ in range(REQUANT_STAGES + 1):
            o5 = reg(o5, f"o{4 + s_}", 16)
        m.d.comb += [clut_r.addr.eq(region_address(cfg, "cell_lut", Cat(c8[:7], ~c8[7]), self.region)),
                     clut_r.en.eq(adv)]
        hq = reg(o5 * clut_r.data, "hq", 32)
        return (requant(m, hq, self.h_mult, self.h_shift, 8, en=adv, name=f"rq_h_l{t}"),
                requant(m, hq, self.out_mult, self.out_shift, 8, en=adv, name=f"rq_out_l{t}"))
