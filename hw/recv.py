"""RECV: x beats of W elements into the first GEMM's activation memory and the input buffer.

AX: X is striped over act_q's C banks by its flat index f (bank f mod C, word f div C), so W <= C
consecutive elements land in distinct banks. XB: X row r lives in act_p bank r mod R at element
address (r div R) * n2 + c; a beat covers at most two rows (W <= n2), each a run of consecutive
addresses, one per sub-bank (act_p bank i has W sub-banks: element address a in sub-bank a mod W,
word a div W). With batch B, vector b of a batch is block b of X' (AX: columns b*n2 .. of
[X_0 | ..], n2*B wide; XB: rows b*n1 .. of the stacked X_0; ..); batch j is written into half
j mod 2 of its memory (the address MSB). The input buffer takes each beat as one word of bank b
(vector b of the batch), in half j mod 2."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import vector_count_bits
from doping.config import AccelConfig, bits_for
from doping.hw.memories import Registers, write_signature
from doping.hw.streams import x_layout
from doping.hw.stripes import bank_offset, beat_step, divmod_add, stride_layout


class RecvUnit(wiring.Component):
    """Ports: ``x``; ``allow`` (the top lets a beat in: X' and the input-buffer slot of the vector
    are free); ``vector`` (RECV's vector counter: bit log2(B) the half, the bits below it the
    vector in the batch); ``regs`` and ``strides`` (stable while it runs); write ports of act_p
    (R banks x W sub-banks), act_q (C banks) and the input buffer (B banks); ``received``: x
    elements taken of the vector so far; ``first``: its first beat is taken this cycle; ``done``:
    its last."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        R, C, W, NB = cfg.rows, cfg.cols, cfg.stream_bytes, cfg.batch
        super().__init__({
            "x": In(stream.Signature(x_layout(cfg))),
            "allow": In(1),
            "vector": In(vector_count_bits(cfg)),
            "regs": In(Registers),
            "strides": In(stride_layout(C)),
            "act_p": In(write_signature(cfg, "act_p", signed(8))).array(R, W),
            "act_q": In(write_signature(cfg, "act_q", signed(8))).array(C),
            "x_buf": In(write_signature(cfg, "x_buf", unsigned(8 * W))).array(NB),
            "received": Out(bits_for(cfg.max_n) + 1),
            "first": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, regs, x, e = self.cfg, self.regs, self.x, self.received
        R, C, W, NB = cfg.rows, cfg.cols, cfg.stream_bytes, cfg.batch
        wb, bb = W.bit_length() - 1, NB.bit_length() - 1
        mem = cfg.memories
        ph_bits, qh_bits, xb_bits = (mem[k].addr_bits - 1 for k in ("act_p", "act_q", "x_buf"))  # in a half
        order_xb, kp_off = regs.order[0], regs.kp_off[0]
        half = self.vector[bb]

        xc = Signal(32)  # XB: column (of n2) of X of the beat's first element
        # XB: its row's bank and (row // R) * n2; max(., 2): no 0-bit signals
        xr_bank, xr_base = Signal(range(max(R, 2))), Signal(32)
        xq, xrem = Signal(32), Signal(range(max(C, 2)))  # AX: f div C, f mod C of the beat's first element
        vq, vr = Signal(32), Signal(range(max(C, 2)))  # AX: f div C, f mod C of the vector's block (b * n2)
        fire = x.valid & x.ready
        last = e + W >= regs.n  # the vector's final beat
        m.d.comb += [x.ready.eq(self.allow), self.first.eq(fire & (e == 0)), self.done.eq(fire & last)]

        xel = Array(x.payload[w] for w in range(W))
        in_vec = Array(e + w < regs.n for w in range(W))  # not padding past the vector's end
        for b, wp in enumerate(self.x_buf):  # vector b of a batch into bank b
            m.d.comb += [wp.addr.eq(Cat((e >> wb)[:xb_bits], half)), wp.data.eq(x.payload.as_value()),
                         wp.en.eq(fire & ((self.vector[:bb] == b) if NB > 1 else 1))]
        rest = regs.n2 - xc  # XB: elements of the beat still in row r (all W when >= W)
        nb_wrap = xr_bank == R - 1  # row r + 1 is in bank 0, one block of n2 further
        a0 = xr_base + xc  # XB: element address of the beat's first element
        b0 = Mux(nb_wrap, xr_base + regs.n2, xr_base) - rest  # row r + 1's element w is at b0 + w
        write = fire & ~kp_off  # (continuous assignments: no enable stays X in a 4-state simulator)
        for i in range(R):
            for t in range(W):  # sub-bank t of bank i: element w with address = t mod W
                w0 = (t - a0)[:wb] if W > 1 else Const(0)
                w1 = (t - b0)[:wb] if W > 1 else Const(0)
                if R == 1:  # rows r and r + 1 follow each other in the one bank
                    hit, w, addr = Const(1), w0, a0 + w0
                else:
                    first = (xr_bank == i) & (w0 < rest)
                    next_bank = (xr_bank + 1 == i) if i else nb_wrap
                    second_row = next_bank & (w1 >= rest)
                    hit, w, addr = first | second_row, Mux(first, w0, w1), Mux(first, a0 + w0, b0 + w1)
                wp = self.act_p[i][t]
                m.d.comb += [wp.addr.eq(Cat((addr >> wb)[:ph_bits], half)), wp.data.eq(xel[w]),
                             wp.en.eq(write & order_xb & hit & in_vec[w])]
        for j in range(C):  # AX: bank j takes element (j - f mod C) mod C of the beat
            w_j, wrapped = bank_offset(j, xrem, C)
            wj = w_j[:max(wb, 1)]
            wp = self.act_q[j]
            m.d.comb += [wp.addr.eq(Cat((xq + wrapped)[:qh_bits], half)), wp.data.eq(xel[wj]),
                         wp.en.eq(write & ~order_xb & (w_j < W) & in_vec[wj])]

        def add(q, r, stride):
            s = self.strides[stride]
            return divmod_add(q, r, s.q, s.r, C)

        with m.If(fire):
            m.d.sync += e.eq(e + W)
            with m.If(xc + W >= regs.n2):  # the beat ends row r (W <= n2: at most one row change)
                m.d.sync += xc.eq(xc + W - regs.n2)
                with m.If(nb_wrap):
                    m.d.sync += [xr_bank.eq(0), xr_base.eq(xr_base + regs.n2)]
                with m.Else():
                    m.d.sync += xr_bank.eq(xr_bank + 1)
            with m.Else():
                m.d.sync += xc.eq(xc + W)
            nxt = divmod_add(xq, xrem, 0, beat_step(W, C), C)
            if NB > 1:  # AX: a row of X_b ends with a beat (W divides n2); the next is n2*B on in X'
                jump = add(*nxt, "n2b1")
                row_end = xc + W >= regs.n2
                nxt = Mux(row_end, jump[0], nxt[0]), Mux(row_end, jump[1], nxt[1])
            m.d.sync += [xq.eq(nxt[0]), xrem.eq(nxt[1])]
            with m.If(last):
                m.d.sync += [e.eq(0), xc.eq(0)]
                if NB == 1:
                    m.d.sync += [xr_bank.eq(0), xr_base.eq(0), xq.eq(0), xrem.eq(0)]
                else:  # XB: the next vector's rows follow (xr_* as the last row end left them)
                    with m.If(self.vector[:bb] == NB - 1):  # the batch's last vector
                        m.d.sync += [xr_bank.eq(0), xr_base.eq(0), xq.eq(0), xrem.eq(0), vq.eq(0), vr.eq(0)]
                    with m.Else():  # AX: the next vector's block starts n2 further in X'
                        nv = add(vq, vr, "n2")
                        m.d.sync += [vq.eq(nv[0]), vr.eq(nv[1]), xq.eq(nv[0]), xrem.eq(nv[1])]
        return m
