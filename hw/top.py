"""The doping accelerator top: memories, systolic Kronecker datapath, gather unit, controllers and
stream interfaces (docs/hardware.md).

Streams (``amaranth.lib.stream``, valid/ready): ``load`` (sel, addr, data words from
``doping.hw.loader``), ``x`` (W = ``stream_bytes`` int8 input elements per beat, ceil(n / W) beats
per vector, element e of a vector in beat e // W at position e % W), ``y`` (W int8 outputs per
beat and ``last`` on a vector's final beat; positions past m in that beat are padding). Four
units, each a component with its own controller, work on consecutive vectors at once and hand
over through double-buffered memories: RECV (hw/recv.py: x into the activation memory and the
input buffer), GEMM (hw/gemm.py: the two Kronecker GEMMs on the systolic array, tile by tile),
GATHER (hw/gather.py: the lanes, fed by a broadcast of the input buffer) and SEND (hw/send.py: y
through W pipelines of ``SEND_LATENCY`` stages). The top owns the memories (every bank a
submodule named after its ``doping.arch`` memory), the register file, the load stream, the
vector counters and the hand-over rules between the units. Vector counters say which
vector each unit is on; a unit starts the next vector once what it reads is complete and what it
writes is free. With ``batch`` B > 1 the first GEMM runs once per B vectors, on their X side by
side (AX) or stacked (XB), and the lanes take a batch at once (each overlay entry read feeds B
MACs, one per vector); the second GEMM and SEND stay per vector.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import REG_INDEX, SEL_A, SEL_B, SEL_BIAS, SEL_OVERLAY, SEL_REG, SEL_ROWMAP, UNITS, vector_count_bits
from doping.config import AccelConfig, bits_for
from doping.hw.gather import GatherUnit
from doping.hw.gemm import GemmEngine
from doping.hw.memories import Registers, banks
from doping.hw.recv import RecvUnit
from doping.hw.send import SendUnit
from doping.hw.streams import LoadWord, x_layout, y_layout
from doping.hw.stripes import STRIDES, divmod_by, stride_layout

#: Deliberate bugs that tests inject to prove the regression catches them (never in products).
MUTATIONS = ("round_down", "gather_off_by_one")


class Accelerator(wiring.Component):
    """The mat-vec accelerator: ``load`` words, then vectors on ``x`` and their results on ``y``;
    ``status`` bit i: unit ``UNITS[i]`` busy; ``vector_cycles``: the last vector's first x beat
    accepted .. last y beat taken, inclusive; ``x_len`` / ``y_len``: elements of a vector on x / y
    for the loaded layer (its n and m registers; they change only while every unit is idle)."""

    def __init__(self, cfg: AccelConfig, mutation: str | None = None):
        if mutation is not None and mutation not in MUTATIONS:
            raise ValueError(f"unknown mutation {mutation!r}")
        self.cfg, self.mutation = cfg, mutation
        super().__init__({
            "load": In(stream.Signature(LoadWord)),
            "x": In(stream.Signature(x_layout(cfg))),
            "y": Out(stream.Signature(y_layout(cfg))),
            "status": Out(len(UNITS)),
            "vector_cycles": Out(32),
            "x_len": Out(32),
            "y_len": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C, L, W, NB = cfg.rows, cfg.cols, cfg.lanes, cfg.stream_bytes, cfg.batch
        bb = NB.bit_length() - 1  # log2(B)
        mem = cfg.memories
        VB = vector_count_bits(cfg)

        # ---- memories (doping.arch.memory_map) ----
        a_m = banks(m, "a", R, mem["a"].depth, signed(8))
        b_m = banks(m, "b", C, mem["b"].depth, signed(8))
        p_sub = [banks(m, f"act_p{i}_", W, mem["act_p"].depth, signed(8)) for i in range(R)]  # W sub-banks a bank
        q_m = banks(m, "act_q", C, mem["act_q"].depth, signed(8))
        k_m = banks(m, "kbuf", C, mem["kbuf"].depth, signed(32))
        o_m = banks(m, "overlay", L, mem["overlay"].depth, unsigned(mem["overlay"].width))
        s_m = banks(m, "ov_acc", 2 * L, mem["ov_acc"].depth, unsigned(32 * NB), transparent=True)
        rowmap_m = banks(m, "row_map", W, mem["row_map"].depth, unsigned(mem["row_map"].width))
        xbuf_m = banks(m, "x_buf", NB, mem["x_buf"].depth, unsigned(8 * W))
        bias_m = banks(m, "bias", W, mem["bias"].depth, signed(32)) if cfg.lstm_cell else []

        # ---- registers, and the strides derived from them (registered: the registers only change
        # while every unit is idle) ----
        regs, strides = Signal(Registers, name="regs"), Signal(stride_layout(C), name="strides")
        n2, m2 = regs.n2[:bits_for(cfg.max_n) + 1], regs.m2[:bits_for(cfg.max_m) + 1]
        for key, val in zip(STRIDES, (n2, n2 << bb, n2 * (NB - 1), m2, m2 * R, m2 * (R - 1))):
            q, r = divmod_by(val, C)
            m.d.sync += [strides[key].q.eq(q), strides[key].r.eq(r)]
        kp_off = regs.kp_off[0]
        m.d.comb += [self.x_len.eq(regs.n), self.y_len.eq(regs.m)]

        # ---- the units, and the vectors each has finished (mod 2**VB) ----
        m.submodules.recv = recv = RecvUnit(cfg)
        m.submodules.gemm = gemm = GemmEngine(cfg)
        m.submodules.gather = gather = GatherUnit(cfg, col_offset=int(self.mutation == "gather_off_by_one"))
        m.submodules.send = send = SendUnit(cfg, round_down=self.mutation == "round_down")
        n_recv, n_g1, n_g2, n_lanes, n_sent = (Signal(VB, name=f"n_{k}") for k in ("recv", "g1", "g2", "lanes", "sent"))

        def ahead(a, b):  # how many vectors counter a is ahead of b
            return (a - b)[:VB]

        for unit in (recv, gemm, gather, send):
            m.d.comb += unit.regs.eq(regs)
        e = recv.received  # x elements received of the vector in RECV
        self._load(m, regs, ((SEL_A, a_m), (SEL_B, b_m), (SEL_OVERLAY, o_m), (SEL_ROWMAP, rowmap_m), (SEL_BIAS, bias_m)))
        m.d.comb += self.load.ready.eq((n_sent == n_recv) & (e == 0))  # while every unit is idle

        # RECV: a vector may start once the previous batch's first GEMM has read X' (two batches
        # before: X' is double-buffered) and its input-buffer slot is free (the broadcast of the
        # vector 2B before it is over)
        wiring.connect(m, wiring.flipped(self.x), recv.x)
        m.d.comb += [recv.allow.eq((kp_off | (ahead(n_recv, n_g1) < 2 * NB)) & (ahead(n_recv, n_lanes) <= 2 * NB - 1)),
                     recv.vector.eq(n_recv), recv.strides.eq(strides)]
        for b, (wp, rp) in enumerate(xbuf_m):
            wiring.connect(m, recv.x_buf[b], wp)
            wiring.connect(m, gather.x_buf[b], rp)
        # act_p / act_q take RECV's writes of X' (half n_recv's batch parity) and the first GEMM's
        # drain of its result (half 0): never the same memory at once (AX: RECV act_q, G1 act_p)
        for wp, rw, gw in [*((p_sub[i][t][0], recv.act_p[i][t], gemm.act_p_w[i][t]) for i in range(R) for t in range(W)),
                           *((q_m[j][0], recv.act_q[j], gemm.act_q_w[j]) for j in range(C))]:
            m.d.comb += [wp.en.eq(rw.en | gw.en), wp.addr.eq(Mux(gw.en, gw.addr, rw.addr)),
                         wp.data.eq(Mux(gw.en, gw.data, rw.data))]

        # GEMM: the first GEMM of a batch once RECV has all its B vectors (XB at B = 1: its first row
        # band, ``_early_g1``); then each vector's second GEMM once its kbuf half is free (SEND(v-2) over)
        received = ahead(n_recv, n_g2)
        m.d.comb += [gemm.go.eq((received >= Mux(kp_off, 1, NB)) | (self._early_g1(regs, received, e) & ~kp_off)),
                     gemm.x_avail.eq(e), gemm.x_all.eq(received >= 1), gemm.strides.eq(strides),
                     gemm.kbuf_free.eq(ahead(n_g2, n_sent) <= 1), gemm.g1_half.eq(n_g1[bb]), gemm.vector.eq(n_g2)]
        for i in range(R):
            wiring.connect(m, gemm.a[i], a_m[i][1])
            for t in range(W):
                wiring.connect(m, gemm.act_p_r[i][t], p_sub[i][t][1])
        for j in range(C):
            wiring.connect(m, gemm.b[j], b_m[j][1])
            wiring.connect(m, gemm.act_q_r[j], q_m[j][1])
            wiring.connect(m, gemm.kbuf_w[j], k_m[j][0])
            wiring.connect(m, send.kbuf[j], k_m[j][1])

        # GATHER: the lanes take the batch from vector n_lanes once RECV of its last vector has
        # begun and its row-sum half is free (SEND of the batch before last is over)
        recv_has_it = ahead(n_recv, n_lanes) >= NB  # RECV is past the batch's last vector
        recv_on_last = ahead(n_recv, n_lanes) == NB - 1
        recv_busy = recv.x.valid & recv.x.ready | (e != 0)
        m.d.comb += [gather.start.eq(~gather.active & (recv_has_it | (recv_on_last & recv_busy))
                                     & (ahead(n_lanes, n_sent) <= NB)),
                     gather.written.eq(e), gather.complete.eq(recv_has_it), gather.half.eq(n_lanes[bb])]
        for l in range(L):
            wiring.connect(m, gather.overlay[l], o_m[l][1])

        # SEND: the vector's y once its row sums are complete, behind its second GEMM's row bands
        k_done, k_part = self._k_in_kbuf(gemm, ahead(n_g2, n_sent))
        m.d.comb += [send.pending.eq((k_done | k_part) & (ahead(n_lanes, n_sent) >= 1)), send.vector.eq(n_sent),
                     send.limit.eq(Mux(k_done, regs.m, gemm.k_ready))]
        for w, (_, rp) in enumerate(rowmap_m):
            wiring.connect(m, send.rowmap[w], rp)
        for w, (_, rp) in enumerate(bias_m):  # the LSTM top's gate bias, bank w for position w
            wiring.connect(m, send.bias[w], rp)
        wiring.connect(m, wiring.flipped(self.y), send.y)
        self._row_sums(m, s_m, gather, send, n_lanes[bb], n_sent[bb])

        # ---- vector counters and cycle stamps (first x beat accepted .. last y beat taken) ----
        now = Signal(32)
        started = Array(Signal(32, name=f"start_{v}") for v in range(1 << VB))
        m.d.sync += now.eq(now + 1)
        with m.If(recv.first):
            m.d.sync += started[n_recv].eq(now)
        with m.If(recv.done):
            m.d.sync += n_recv.eq(n_recv + 1)
        with m.If(gemm.skip):  # no Kronecker part: the vector passes the GEMM engine in one cycle
            m.d.sync += [n_g1.eq(n_g1 + 1), n_g2.eq(n_g2 + 1)]
        with m.If(gemm.g1_done):
            m.d.sync += n_g1.eq(n_g1 + NB)
        with m.If(gemm.g2_done):
            m.d.sync += n_g2.eq(n_g2 + 1)
        with m.If(gather.done):
            m.d.sync += n_lanes.eq(n_lanes + NB)
        with m.If(send.done):
            m.d.sync += [n_sent.eq(n_sent + 1), self.vector_cycles.eq(now - started[n_sent] + 1)]
        m.d.comb += self.status.eq(Cat(e != 0, ~gemm.idle, gather.active, send.busy))
        return m

    def _early_g1(self, regs, received, e):
        """XB at B = 1: the first GEMM may start while RECV is on its vector (``received`` = 0
        vectors of it done), once the first row band of X (R rows of n2) is in; never before the
        vector's first beat (registers of an unloaded layer read 0)."""
        if self.cfg.batch != 1:
            return 0
        return regs.order[0] & (received == 0) & (e != 0) & (e >= regs.n2 * self.cfg.rows)

    @staticmethod
    def _k_in_kbuf(gemm, g2_ahead):
        """(all of SEND's vector's K is in kbuf, the second GEMM of SEND's vector is under way with
        a row band of K in kbuf: ``gemm.k_ready``)."""
        return g2_ahead >= 1, (g2_ahead == 0) & gemm.g2_running & (gemm.k_ready != 0)

    def _load(self, m, regs, memories):
        """The load stream: register words, and memory words to bank ``addr`` >> (the bank's
        address bits) of the memory ``sel`` names."""
        lw = self.load.payload
        fire = self.load.valid & self.load.ready
        with m.If(fire & (lw.sel == SEL_REG)):
            with m.Switch(lw.addr):
                for name, idx in REG_INDEX.items():
                    with m.Case(idx):
                        m.d.sync += getattr(regs, name).eq(lw.data)
        for sel, ports in memories:
            for bank, (wp, _) in enumerate(ports):
                abits = len(wp.addr)
                m.d.comb += [wp.addr.eq(lw.addr[:abits]), wp.data.eq(lw.data),
                             wp.en.eq(fire & (lw.sel == sel) & (lw.addr[abits:] == bank))]

    def _row_sums(self, m, s_m, gather, send, lane_half, send_half):
        """The row-sum banks: two per lane (l, and L + l), one per batch parity. The lanes read and
        write the half of their batch's parity; SEND, while it runs, reads the half of its vector's
        (position w's row sum is in a lane of set w: lane l serves position l mod W)."""
        L, W = self.cfg.lanes, self.cfg.stream_bytes
        for l in range(L):
            for h in (0, 1):
                wp, rp = s_m[h * L + l]
                send_owns = send.pending & (send_half == h)
                m.d.comb += [rp.addr.eq(Mux(send_owns, send.rowsum_slot[l % W], gather.rowsum_raddr[l])),
                             rp.en.eq(Mux(send_owns, send.rowsum_en, gather.rowsum_ren[l] & (lane_half == h))),
                             wp.addr.eq(gather.rowsum_waddr[l]), wp.data.eq(gather.rowsum_wdata[l]),
                             wp.en.eq(gather.rowsum_wen[l] & (lane_half == h))]
            m.d.comb += gather.rowsum_rdata[l].eq(Mux(lane_half, s_m[L + l][1].data, s_m[l][1].data))
        m.d.comb += [send.rowsum[i].eq(rp.data) for i, (_, rp) in enumerate(s_m)]
