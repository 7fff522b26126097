"""The doping accelerator top: memories, systolic Kronecker datapath, gather unit, controller and
stream interfaces (docs/hardware.md).

Streams (``amaranth.lib.stream``, valid/ready): ``load`` (sel, addr, data words from
``doping.hw.loader``), ``x`` (one int8 input element per beat, n beats per vector), ``y`` (one int8
output element per beat, m per vector). Per vector the controller runs RECV (n cycles, x written
into the banked activation memory and every gather lane's copy), then the two Kronecker GEMMs
(tile by tile: FEED K cycles, FLUSH R+C-1, DRAIN C or R) while the gather lanes run concurrently,
and SENDs y (one element per cycle when ``y.ready`` stays high, each as soon as its overlay row sum is written).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from doping.config import AccelConfig, bits_for
from doping.hw.array import SystolicArray
from doping.hw.gather import GatherLane
from doping.hw.loader import REG_INDEX, SEL_A, SEL_B, SEL_OVERLAY, SEL_REG
from doping.hw.requant import requant

#: Controller states, as reported on ``status`` (the cocotb monitor records cycles per phase).
PHASES = ("IDLE", "RECV", "G1", "G2", "SEND")


#: Load-stream payload: which memory (or the register file), bank|offset address, data.
LoadWord = data.StructLayout({"sel": unsigned(4), "addr": unsigned(24), "data": unsigned(32)})


def _banks(m, name, banks, depth, shape):
    mems = []
    for b in range(banks):
        mem = memory.Memory(shape=shape, depth=depth, init=[])
        m.submodules[f"{name}{b}"] = mem
        mems.append((mem.write_port(), mem.read_port()))
    return mems


#: Deliberate bugs that tests inject to prove the regression catches them (never in products).
MUTATIONS = ("round_down", "gather_off_by_one")


class Accelerator(wiring.Component):
    def __init__(self, cfg: AccelConfig, mutation: str | None = None):
        if mutation is not None and mutation not in MUTATIONS:
            raise ValueError(f"unknown mutation {mutation!r}")
        self.cfg, self.mutation = cfg, mutation
        super().__init__({
            "load": In(stream.Signature(LoadWord)),
            "x": In(stream.Signature(signed(8))),
            "y": Out(stream.Signature(signed(8))),
            "status": Out(range(len(PHASES))),
            "vector_cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C, L = cfg.rows, cfg.cols, cfg.lanes
        mem = cfg.memories
        abits = {k: bits_for(v["depth"]) for k, v in mem.items()}
        col_bits = bits_for(cfg.max_n)

        # ---- registers ----
        regs = {name: Signal(32, name=f"reg_{name}") for name in REG_INDEX}
        order_xb = regs["order"][0]

        # ---- memories ----
        a_m = _banks(m, "a", R, mem["a"]["depth"], signed(8))
        b_m = _banks(m, "b", C, mem["b"]["depth"], signed(8))
        p_m = _banks(m, "act_p", R, mem["act_p"]["depth"], signed(8))
        q_m = _banks(m, "act_q", C, mem["act_q"]["depth"], signed(8))
        k_m = _banks(m, "kbuf", C, mem["kbuf"]["depth"], signed(32))
        x_m = _banks(m, "x_copy", L, mem["x_copy"]["depth"], signed(8))
        o_m = _banks(m, "overlay", L, mem["overlay"]["depth"], unsigned(mem["overlay"]["width"]))
        s_m = _banks(m, "ov_acc", L, mem["ov_acc"]["depth"], signed(32))

        m.submodules.array = arr = SystolicArray(R, C)
        lanes = []
        for l in range(L):
            lane = GatherLane(col_bits, abits["overlay"], abits["ov_acc"],
                              _col_offset=int(self.mutation == "gather_off_by_one"))
            m.submodules[f"lane{l}"] = lane
            lanes.append(lane)
            (_, orp), (_, xrp), (swp, _) = o_m[l], x_m[l], s_m[l]
            m.d.comb += [orp.addr.eq(lane.ent_addr), orp.en.eq(lane.ent_en), lane.ent_data.eq(orp.data),
                         xrp.addr.eq(lane.x_addr), xrp.en.eq(lane.x_en), lane.x_data.eq(xrp.data),
                         swp.addr.eq(lane.sum_addr), swp.data.eq(lane.sum_data), swp.en.eq(lane.sum_en)]
        gather_start = Signal()
        m.d.comb += [l.start.eq(gather_start) for l in lanes]

        state = Signal(range(len(PHASES)))
        m.d.comb += self.status.eq(state)

        # ---- load stream: register and memory writes, accepted while idle ----
        lw = self.load.payload
        m.d.comb += self.load.ready.eq(state == 0)
        load_fire = self.load.valid & self.load.ready
        with m.If(load_fire & (lw.sel == SEL_REG)):
            with m.Switch(lw.addr):
                for name, idx in REG_INDEX.items():
                    with m.Case(idx):
                        m.d.sync += regs[name].eq(lw.data)
        for sel, banks, key in ((SEL_A, a_m, "a"), (SEL_B, b_m, "b"), (SEL_OVERLAY, o_m, "overlay")):
            for bidx, (wp, _) in enumerate(banks):
                hit = load_fire & (lw.sel == sel) & (lw.addr[abits[key]:] == bidx)
                m.d.comb += [wp.addr.eq(lw.addr[:abits[key]]), wp.data.eq(lw.data), wp.en.eq(hit)]

        # ---- cycle counter: first x beat accepted .. last y beat accepted ----
        counting = Signal()
        count = Signal(32)
        with m.If(counting):
            m.d.sync += count.eq(count + 1)

        # ---- RECV: x elements into the activation memory and the lane copies ----
        e = Signal(col_bits + 1)
        xr, xc = Signal(32), Signal(32)  # row (of n1) and column (of n2) of X
        xr_bank, xr_base = Signal(range(max(R, 2))), Signal(32)  # XB: row bank, (row // R) * n2; max(.,2): no 0-bit signals
        xc_bank, xc_base = Signal(range(max(C, 2))), Signal(32)  # AX: column bank, (col // C) * n1
        x_fire = self.x.valid & self.x.ready
        m.d.comb += self.x.ready.eq((state == 0) | (state == 1))
        p_wr = [(Signal(abits["act_p"], name=f"pw_addr{i}"), Signal(signed(8), name=f"pw_data{i}"),
                 Signal(name=f"pw_en{i}")) for i in range(R)]
        q_wr = [(Signal(abits["act_q"], name=f"qw_addr{j}"), Signal(signed(8), name=f"qw_data{j}"),
                 Signal(name=f"qw_en{j}")) for j in range(C)]
        for (wp, _), (a_, d_, en_) in zip(p_m + q_m, p_wr + q_wr):
            m.d.comb += [wp.addr.eq(a_), wp.data.eq(d_), wp.en.eq(en_)]
        for (wp, _) in x_m:
            m.d.comb += [wp.addr.eq(e), wp.data.eq(self.x.payload), wp.en.eq(x_fire)]
        with m.If(x_fire):
            for i in range(R):
                m.d.comb += [p_wr[i][0].eq(xr_base + xc), p_wr[i][1].eq(self.x.payload),
                             p_wr[i][2].eq(order_xb & (xr_bank == i))]
            for j in range(C):
                m.d.comb += [q_wr[j][0].eq(xc_base + xr), q_wr[j][1].eq(self.x.payload),
                             q_wr[j][2].eq(~order_xb & (xc_bank == j))]
            m.d.sync += [e.eq(e + 1), counting.eq(1)]
            with m.If(e == 0):
                m.d.sync += count.eq(1)
            with m.If(xc == regs["n2"] - 1):
                m.d.sync += [xc.eq(0), xc_bank.eq(0), xc_base.eq(0), xr.eq(xr + 1)]
                with m.If(xr_bank == R - 1):
                    m.d.sync += [xr_bank.eq(0), xr_base.eq(xr_base + regs["n2"])]
                with m.Else():
                    m.d.sync += xr_bank.eq(xr_bank + 1)
            with m.Else():
                m.d.sync += xc.eq(xc + 1)
                with m.If(xc_bank == C - 1):
                    m.d.sync += [xc_bank.eq(0), xc_base.eq(xc_base + regs["n1"])]
                with m.Else():
                    m.d.sync += xc_bank.eq(xc_bank + 1)

        # ---- GEMM engine ----
        second = Signal()  # 0: first GEMM, 1: second
        # P from A (AX g1, XB g2) or act_p; Q from B (XB g1, AX g2) or act_q
        p_from_a = Signal()
        q_from_b = Signal()
        m.d.comb += [p_from_a.eq(order_xb == second), q_from_b.eq(order_xb != second)]
        g_rows, g_cols, g_k = Signal(32), Signal(32), Signal(32)
        m.d.comb += [
            g_rows.eq(Mux(order_xb & ~second, regs["n1"], regs["m1"])),
            g_cols.eq(Mux(second, regs["m2"], Mux(order_xb, regs["m2"], regs["n2"]))),
            g_k.eq(Mux(order_xb == second, regs["n1"], regs["n2"])),
        ]
        drain_cols = Signal()
        m.d.comb += drain_cols.eq(second | order_xb)
        rb_row, cb_col = Signal(32), Signal(32)  # first row / column of the tile
        p_base, q_base = Signal(32), Signal(32)  # rb*K, cb*K
        k = Signal(32)
        sub = Signal(range(3))  # 0 FEED, 1 FLUSH, 2 DRAIN
        wait = Signal(range(R + C + 1))  # FLUSH: R+C-1 cycles until the last PE has captured
        d = Signal(range(max(R, C) + 1))
        dest_row_base, dest_col_base = Signal(32), Signal(32)  # AX g1: rb*n2; XB g1: cb*n1
        kb_row = Signal(32)  # kbuf: (row being drained) * kb_stride
        kb_col = Signal(32)  # kbuf: cb
        feeding = Signal()
        f_v, f_first, f_last = Signal(), Signal(), Signal()
        m.d.sync += [f_v.eq(feeding), f_first.eq(feeding & (k == 0)), f_last.eq(feeding & (k == g_k - 1))]
        m.d.comb += [arr.valid.eq(f_v), arr.first.eq(f_first), arr.last.eq(f_last), arr.drain_cols.eq(drain_cols)]
        for i, ((_, arp), (_, prp)) in enumerate(zip(a_m, p_m)):
            m.d.comb += [arp.addr.eq(p_base + k), prp.addr.eq(p_base + k), arp.en.eq(feeding), prp.en.eq(feeding),
                         arr.p[i].eq(Mux(p_from_a, arp.data, prp.data))]
        for j, ((_, brp), (_, qrp)) in enumerate(zip(b_m, q_m)):
            m.d.comb += [brp.addr.eq(q_base + k), qrp.addr.eq(q_base + k), brp.en.eq(feeding), qrp.en.eq(feeding),
                         arr.q[j].eq(Mux(q_from_b, brp.data, qrp.data))]

        # drain writes
        draining = Signal()
        m.d.comb += arr.drain.eq(draining)
        for i in range(R):
            t8 = requant(m, arr.out_row[i], regs["t_mult"][:15], regs["t_shift"][:6], 8, name=f"rq_row{i}")
            col = cb_col + (C - 1) - d
            with m.If(draining & ~second & ~order_xb):
                m.d.comb += [p_wr[i][0].eq(dest_row_base + col), p_wr[i][1].eq(t8),
                             p_wr[i][2].eq((rb_row + i < g_rows) & (col < g_cols))]
        row = rb_row + (R - 1) - d
        for j in range(C):
            t8 = requant(m, arr.out_col[j], regs["t_mult"][:15], regs["t_shift"][:6], 8, name=f"rq_col{j}")
            with m.If(draining & ~second & order_xb):
                m.d.comb += [q_wr[j][0].eq(dest_col_base + row), q_wr[j][1].eq(t8),
                             q_wr[j][2].eq((row < g_rows) & (cb_col + j < g_cols))]
            kwp = k_m[j][0]
            m.d.comb += [kwp.addr.eq(kb_row + kb_col), kwp.data.eq(arr.out_col[j]),
                         kwp.en.eq(draining & second & (row < g_rows) & (cb_col + j < g_cols))]

        # ---- SEND: y[i] = requant(sat32(K[i] + requant(O[i]))) ----
        sr, sc = Signal(32), Signal(32)  # row (of m1), column (of m2) of the next y to read
        sc_bank, sc_blk = Signal(range(max(C, 2))), Signal(32)
        s_lane, s_slot = Signal(range(max(L, 2))), Signal(32)
        s_rowbase = Signal(32)  # sr * kb_stride
        sent_i = Signal(32)
        have = Signal()
        kb_bank_d, lane_d = Signal(range(max(C, 2))), Signal(range(max(L, 2)))
        fire = self.y.valid & self.y.ready
        issue = Signal()
        # y[i] may be read once lane i mod L has written its row sum: SEND trails the gather lanes
        row_ready = Signal()
        m.d.comb += row_ready.eq(Array(l.rows_done for l in lanes)[s_lane] > s_slot)
        m.d.comb += issue.eq((state == 4) & (sent_i < regs["m"]) & (~have | fire) & row_ready)
        for j, (_, krp) in enumerate(k_m):
            m.d.comb += [krp.addr.eq(s_rowbase + sc_blk), krp.en.eq(issue & (sc_bank == j))]
        for l, (_, srp) in enumerate(s_m):
            m.d.comb += [srp.addr.eq(s_slot), srp.en.eq(issue & (s_lane == l))]
        kval = Array(krp.data for _, krp in k_m)[kb_bank_d]
        oval = Array(srp.data for _, srp in s_m)[lane_d]
        o_al = requant(m, oval, regs["ov_mult"][:15], regs["ov_shift"][:6], 32, name="rq_ov")
        joined = Signal(signed(33))
        acc = Signal(signed(32))
        m.d.comb += [joined.eq(kval + o_al),
                     acc.eq(Mux(joined > (1 << 31) - 1, (1 << 31) - 1, Mux(joined < -(1 << 31), -(1 << 31), joined)))]
        y8 = requant(m, acc, regs["y_mult"][:15], regs["y_shift"][:6], 8, name="rq_y",
                     _round=self.mutation != "round_down")
        m.d.comb += [self.y.valid.eq(have), self.y.payload.eq(y8)]
        with m.If(issue):
            m.d.sync += [have.eq(1), kb_bank_d.eq(sc_bank), lane_d.eq(s_lane), sent_i.eq(sent_i + 1)]
            with m.If(sc == regs["m2"] - 1):
                m.d.sync += [sc.eq(0), sc_bank.eq(0), sc_blk.eq(0), sr.eq(sr + 1),
                             s_rowbase.eq(s_rowbase + regs["kb_stride"])]
            with m.Else():
                m.d.sync += sc.eq(sc + 1)
                with m.If(sc_bank == C - 1):
                    m.d.sync += [sc_bank.eq(0), sc_blk.eq(sc_blk + 1)]
                with m.Else():
                    m.d.sync += sc_bank.eq(sc_bank + 1)
            with m.If(s_lane == L - 1):
                m.d.sync += [s_lane.eq(0), s_slot.eq(s_slot + 1)]
            with m.Else():
                m.d.sync += s_lane.eq(s_lane + 1)
        with m.Elif(fire):
            m.d.sync += have.eq(0)

        # ---- controller ----
        def start_gemm(is_second):
            m.d.sync += [second.eq(is_second), rb_row.eq(0), cb_col.eq(0), p_base.eq(0), q_base.eq(0), k.eq(0),
                         sub.eq(0), dest_row_base.eq(0), dest_col_base.eq(0), kb_col.eq(0)]

        m.d.comb += feeding.eq(((state == 2) | (state == 3)) & (sub == 0))
        m.d.comb += draining.eq(((state == 2) | (state == 3)) & (sub == 2))
        with m.Switch(state):
            with m.Case(0, 1):  # IDLE / RECV
                with m.If(x_fire):
                    m.d.sync += state.eq(1)
                    with m.If(e == regs["n"] - 1):
                        m.d.comb += gather_start.eq(1)
                        start_gemm(0)
                        m.d.sync += state.eq(2)
            with m.Case(2, 3):  # G1 / G2: tiles
                with m.Switch(sub):
                    with m.Case(0):
                        m.d.sync += k.eq(k + 1)
                        with m.If(k == g_k - 1):
                            m.d.sync += [k.eq(0), sub.eq(1), wait.eq(0)]
                    with m.Case(1):
                        m.d.sync += wait.eq(wait + 1)
                        with m.If(wait == R + C - 2):
                            m.d.sync += [sub.eq(2), d.eq(0), kb_row.eq((rb_row + R - 1) * regs["kb_stride"])]
                    with m.Case(2):
                        m.d.sync += [d.eq(d + 1), kb_row.eq(kb_row - regs["kb_stride"])]
                        with m.If(d == Mux(drain_cols, R, C) - 1):
                            m.d.sync += sub.eq(0)
                            # next tile: columns first, then rows
                            with m.If(cb_col + C < g_cols):
                                m.d.sync += [cb_col.eq(cb_col + C), q_base.eq(q_base + g_k),
                                             dest_col_base.eq(dest_col_base + regs["n1"]), kb_col.eq(kb_col + 1)]
                            with m.Elif(rb_row + R < g_rows):
                                m.d.sync += [cb_col.eq(0), q_base.eq(0), dest_col_base.eq(0), kb_col.eq(0),
                                             rb_row.eq(rb_row + R), p_base.eq(p_base + g_k),
                                             dest_row_base.eq(dest_row_base + regs["n2"])]
                            with m.Elif(state == 2):
                                start_gemm(1)
                                m.d.sync += state.eq(3)
                            with m.Else():
                                m.d.sync += [state.eq(4), sr.eq(0), sc.eq(0), sc_bank.eq(0), sc_blk.eq(0),
                                             s_lane.eq(0), s_slot.eq(0), s_rowbase.eq(0), sent_i.eq(0), have.eq(0)]
            with m.Case(4):  # SEND
                with m.If(fire & (sent_i == regs["m"]) & ~issue):
                    m.d.sync += [state.eq(0), counting.eq(0), self.vector_cycles.eq(count + 1), e.eq(0),
                                 xr.eq(0), xc.eq(0), xr_bank.eq(0), xr_base.eq(0), xc_bank.eq(0), xc_base.eq(0)]
        return m
