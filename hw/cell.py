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
    """Address bits of one hidden unit within a sequence's state."""
    return bits_for(cfg.memories["gbuf"].depth)


def state_offset(cfg: AccelConfig, unit, seq):
    """Offset of hidden unit ``unit`` of sequence ``seq`` within a layer's state (the sequence
    index above the unit's bits, when the config interleaves several)."""
    u = unit[:hidden_bits(cfg)]
    return Cat(u, seq[:cfg.batch_bits]) if cfg.batch_bits else u


def cell_output(cfg: AccelConfig) -> data.StructLayout:
    """One hidden unit's result: h at its layer's input scale (``own``, fed back), at the next
    layer's (``out``), the unit's index and its sequence."""
    return data.StructLayout({"own": signed(8), "out": signed(8), "index": unsigned(hidden_bits(cfg)),
                              "seq": unsigned(max(cfg.batch_bits, 1))})


#: A table write from the load stream: ``which`` 0 = gate table (sigmoid then tanh), 1 = tanh_c.
TableWrite = data.StructLayout({"en": 1, "which": 1, "addr": unsigned(16), "data": signed(16)})


class LSTMCell(wiring.Component):
    """Ports: ``p`` int8 pre-activations in; ``h`` results out (``cell_output``); ``region``,
    ``fresh``, ``hidden`` (H) and the three requantisations (15-bit multiplier, 6-bit shift) are
    the running layer's constants, stable while it runs; ``table`` writes the activation tables;
    ``busy``: a row is in the pipeline."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "p": In(stream.Signature(y_layout(cfg))),  # the accelerator's y stream (one element a beat)
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
        hb = hidden_bits(cfg)

        (glut_w, glut_r), = banks(m, "gate_lut", 1, mem["gate_lut"].depth, signed(16))
        (clut_w, clut_r), = banks(m, "cell_lut", 1, mem["cell_lut"].depth, signed(16))
        gbuf = banks(m, "gbuf", 3, mem["gbuf"].depth, signed(16), transparent=True)
        (c_w, c_r), = banks(m, "c_state", 1, mem["c_state"].depth, signed(32))
        for wp, which in ((glut_w, 0), (clut_w, 1)):
            m.d.comb += [wp.addr.eq(self.table.addr), wp.data.eq(self.table.data),
                         wp.en.eq(self.table.en & (self.table.which == which))]

        adv = Signal()
        m.d.comb += [adv.eq(~self.h.valid | self.h.ready), self.p.ready.eq(adv)]
        fire = self.p.valid & self.p.ready

        # ---- row counters: block (i, f, g, o), unit j and sequence b of the next row ----
        B = cfg.lstm_batch
        blk, j, b = Signal(2), Signal(hb + 1), Signal(range(max(B, 2)))
        with m.If(fire):
            with m.If(j == self.hidden - 1):
                m.d.sync += [j.eq(0), blk.eq(blk + 1)]
                with m.If(blk == 3):  # the vector's last row: the next sequence's vector follows
                    m.d.sync += b.eq(Mux(b == B - 1, 0, b + 1))
            with m.Else():
                m.d.sync += j.eq(j + 1)

        p = self.p.payload.data[0]
        code = Cat(p[:7], ~p[7])  # p + 128: the table index of an int8 code
        m.d.comb += [glut_r.addr.eq(region_address(cfg, "gate_lut", Cat(code, blk == 2), self.region)),
                     glut_r.en.eq(adv)]
        for _, rp in gbuf:
            m.d.comb += [rp.addr.eq(j), rp.en.eq(adv)]
        m.d.comb += [c_r.addr.eq(region_address(cfg, "c_state", state_offset(cfg, j, b), self.region)),
                     c_r.en.eq(adv)]

        # stage 1: the table value of the row; i, f, g, c of its unit (for an o row)
        v1, blk1, j1, b1 = Signal(), Signal(2), Signal(hb + 1), Signal.like(b)
        with m.If(adv):
            m.d.sync += [v1.eq(fire), blk1.eq(blk), j1.eq(j), b1.eq(b)]
        for k, (wp, _) in enumerate(gbuf):
            m.d.comb += [wp.addr.eq(j1), wp.data.eq(glut_r.data), wp.en.eq(adv & v1 & (blk1 == k))]
        c_prev = Mux(self.fresh.bit_select(b1, 1), 0, c_r.data)
        i_, f_, g_ = (rp.data for _, rp in gbuf)

        # stage 2: the two products
        v2, j2, b2, o2 = Signal(), Signal(hb + 1), Signal.like(b), Signal(signed(16))
        fc, ig = Signal(signed(48)), Signal(signed(32))
        with m.If(adv):
            m.d.sync += [v2.eq(v1 & (blk1 == 3)), j2.eq(j1), b2.eq(b1), o2.eq(glut_r.data), fc.eq(f_ * c_prev),
                         ig.eq(i_ * g_)]

        # stage 3: the new cell state, written back
        half = Const(1 << (Q - 1))
        c_sum = Signal(signed(50))
        m.d.comb += c_sum.eq(((fc + half) >> Q) + ((ig + half) >> Q))
        v3, j3, b3, o3, c3 = Signal(), Signal(hb + 1), Signal.like(b), Signal(signed(16)), Signal(signed(32))
        with m.If(adv):
            m.d.sync += [v3.eq(v2), j3.eq(j2), b3.eq(b2), o3.eq(o2),
                         c3.eq(sat32(c_sum))]
        m.d.comb += [c_w.addr.eq(region_address(cfg, "c_state", state_offset(cfg, j3, b3), self.region)),
                     c_w.data.eq(c3), c_w.en.eq(adv & v3)]

        in_flight = [v1, v2, v3]  # every valid bit of the pipeline

        def delayed(sig, name, stages=REQUANT_STAGES):
            for s_ in range(stages):
                nxt = Signal.like(sig, name=f"{name}_d{s_}")
                with m.If(adv):
                    m.d.sync += nxt.eq(sig)
                sig = nxt
                if name.startswith("v"):
                    in_flight.append(sig)
            return sig

        # the cell requantiser, then the tanh_c table
        c8 = requant(m, c3, self.cell_mult, self.cell_shift, 8, en=adv, name="rq_cell")
        v4, j4, b4, o4 = delayed(v3, "v4"), delayed(j3, "j4"), delayed(b3, "b4"), delayed(o3, "o4")
        m.d.comb += [clut_r.addr.eq(region_address(cfg, "cell_lut", Cat(c8[:7], ~c8[7]), self.region)),
                     clut_r.en.eq(adv)]
        v5, j5, b5, o5 = delayed(v4, "v5", 1), delayed(j4, "j5", 1), delayed(b4, "b5", 1), delayed(o4, "o5", 1)
        hq, v6, j6, b6 = Signal(signed(32)), Signal(), Signal(hb + 1), Signal.like(b)
        with m.If(adv):
            m.d.sync += [hq.eq(o5 * clut_r.data), v6.eq(v5), j6.eq(j5), b6.eq(b5)]
        in_flight.append(v6)
        own = requant(m, hq, self.h_mult, self.h_shift, 8, en=adv, name="rq_h")
        out = requant(m, hq, self.out_mult, self.out_shift, 8, en=adv, name="rq_out")
        v7, j7, b7 = delayed(v6, "v7"), delayed(j6, "j7"), delayed(b6, "b7")
        m.d.comb += [self.h.valid.eq(v7), self.h.payload.own.eq(own), self.h.payload.out.eq(out),
                     self.h.payload.index.eq(j7), self.h.payload.seq.eq(b7),
                     self.busy.eq(Cat(*in_flight).any())]
        return m
