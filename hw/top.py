"""The doping accelerator top: memories, systolic Kronecker datapath, gather unit, controllers and
stream interfaces (docs/hardware.md).

Streams (``amaranth.lib.stream``, valid/ready): ``load`` (sel, addr, data words from
``doping.hw.loader``), ``x`` (W = ``stream_bytes`` int8 input elements per beat, ceil(n / W) beats
per vector, element e of a vector in beat e // W at position e % W), ``y`` (W int8 outputs per
beat and ``last`` on a vector's final beat; positions past m in that beat are padding). Four
units work on consecutive vectors at once, each with its own controller, handing over through
double-buffered memories: RECV (x into the activation memory and the input buffer), the GEMM
engine (the two Kronecker GEMMs, tile by tile), the gather lanes (fed by a broadcast of the input
buffer) and SEND (y through W pipelines of ``SEND_LATENCY`` stages). Vector counters say which
vector each unit is on; a unit starts the next vector once what it reads is complete and what it
writes is free. With ``batch`` B > 1 the first GEMM runs once per B vectors, on their X side by
side (AX) or stacked (XB), and the lanes take a batch at once (each overlay entry read feeds B
MACs, one per vector); the second GEMM and SEND stay per vector.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import (G1_SETTLE, REG_INDEX, SEL_A, SEL_B, SEL_BIAS, SEL_OVERLAY, SEL_REG, SEL_ROWMAP, UNITS,
                         overlay_field, tile_spacing, vector_count_bits)
from doping.config import AccelConfig, bits_for
from doping.hw.array import SystolicArray
from doping.hw.gather import GatherLane
from doping.hw.memories import Registers, banks, region_address
from doping.hw.requant import delayed, requant
from doping.hw.send import SendUnit
from doping.hw.streams import LoadWord, x_layout, y_layout
from doping.hw.stripes import bank_after, bank_offset, beat_step, divmod_add, divmod_by, divmod_sub


#: Deliberate bugs that tests inject to prove the regression catches them (never in products).
MUTATIONS = ("round_down", "gather_off_by_one")


class Accelerator(wiring.Component):
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
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C, L, W = cfg.rows, cfg.cols, cfg.lanes, cfg.stream_bytes
        wb = W.bit_length() - 1  # element index bits inside a W-element word
        mem = cfg.memories
        abits = {k: bits_for(v.depth) for k, v in mem.items()}

        def in_region(addr, key):
            return region_address(cfg, key, addr, regs.layer)

        col_bits = bits_for(cfg.max_n)
        VB = vector_count_bits(cfg)
        NB, bb = cfg.batch, cfg.batch.bit_length() - 1  # batch B (a power of two) and log2(B)

        # A flat index f of a striped memory (act_q holding X, kbuf) is carried as the pair
        # (f div C, f mod C): bank f mod C, word f div C (hw/stripes.py)
        def dm_add(q, r, dq, dr):
            return divmod_add(q, r, dq, dr, C)

        def dm_sub(q, r, dq, dr):
            return divmod_sub(q, r, dq, dr, C)

        # ---- registers ----
        regs = Signal(Registers)
        order_xb = regs.order[0]
        kp_off = regs.kp_off[0]

        # quotient/remainder by C of n2, n2*B, n2*(B-1), m2, R*m2 and (R-1)*m2, registered from the
        # registers (the registers only change while every unit is idle)
        n2_reg, m2_reg = regs.n2[:bits_for(cfg.max_n) + 1], regs.m2[:bits_for(cfg.max_m) + 1]
        dm = {}
        for key, val in (("n2", n2_reg), ("n2b", n2_reg << bb), ("n2b1", n2_reg * (NB - 1)), ("m2", m2_reg),
                         ("rm2", m2_reg * R), ("r1m2", m2_reg * (R - 1))):
            q_, r_ = divmod_by(val, C)
            dm[key] = (Signal(32, name=f"{key}_div_c"), Signal(range(max(C, 2)), name=f"{key}_mod_c"))
            m.d.sync += [dm[key][0].eq(q_), dm[key][1].eq(r_)]

        # ---- memories (kbuf: two halves by address MSB; x_buf: a bank per vector of a batch, two
        # halves (batches) by address MSB; ov_acc: two banks (batches) per lane, B sums a word) ----
        a_m = banks(m, "a", R, mem["a"].depth, signed(8))
        b_m = banks(m, "b", C, mem["b"].depth, signed(8))
        # act_p: R banks of W sub-banks (element address a: sub-bank a mod W, word a div W), so a
        # beat's W consecutive addresses of one bank are written in one cycle at any alignment
        p_sub = [banks(m, f"act_p{i}_", W, mem["act_p"].depth, signed(8)) for i in range(R)]
        q_m = banks(m, "act_q", C, mem["act_q"].depth, signed(8))
        k_m = banks(m, "kbuf", C, mem["kbuf"].depth, signed(32))
        o_m = banks(m, "overlay", L, mem["overlay"].depth, unsigned(mem["overlay"].width))
        s_m = banks(m, "ov_acc", 2 * L, mem["ov_acc"].depth, unsigned(32 * NB), transparent=True)
        rowmap_m = banks(m, "row_map", W, mem["row_map"].depth, unsigned(mem["row_map"].width))
        xbuf_m = banks(m, "x_buf", NB, mem["x_buf"].depth, unsigned(8 * W))
        bias_m = banks(m, "bias", 1, mem["bias"].depth, signed(32)) if cfg.lstm_cell else []
        field = overlay_field(cfg)

        # ---- vector counters: vectors each unit has finished (mod 2**VB) ----
        n_recv, n_g1, n_g2, n_lanes, n_sent = (Signal(VB, name=f"n_{k}") for k in
                                                ("recv", "g1", "g2", "lanes", "sent"))

        def ahead(a_, b_):  # how many vectors counter a_ is ahead of b_
            return (a_ - b_)[:VB]

        m.submodules.array = arr = SystolicArray(R, C)
        lanes = []
        send_pending = Signal()  # SEND may run: its vector's K and row sums are complete
        send_slot = [Signal(field.slot_bits, name=f"send_slot{w}") for w in range(W)]  # per beat position
        send_ren = Signal()
        lane_half = n_lanes[bb]  # batch parity
        for l in range(L):
            lane = GatherLane(field, bits_for(mem["overlay"].layer_depth), cfg.x_window, W, NB,
                              _col_offset=int(self.mutation == "gather_off_by_one"))
            m.submodules[f"lane{l}"] = lane
            lanes.append(lane)
            _, orp = o_m[l]
            m.d.comb += [orp.addr.eq(in_region(lane.ent_addr, "overlay")), orp.en.eq(lane.ent_en),
                         lane.ent_data.eq(orp.data)]
            for h in (0, 1):  # the lanes own the half of their batch's parity, SEND of its vector's
                swp, srp = s_m[h * L + l]
                send_owns = send_pending & (n_sent[bb] == h)
                m.d.comb += [srp.addr.eq(Mux(send_owns, send_slot[l % W], lane.acc_raddr)),
                             srp.en.eq(Mux(send_owns, send_ren, lane.acc_ren & (lane_half == h))),
                             swp.addr.eq(lane.acc_waddr), swp.data.eq(lane.acc_wdata),
                             swp.en.eq(lane.acc_wen & (lane_half == h))]
            m.d.comb += lane.acc_rdata.eq(Mux(lane_half, s_m[L + l][1].data, s_m[l][1].data))
        gather_start = Signal()
        lanes_active = Signal()
        lanes_room, lanes_done = Signal(), Signal()
        m.d.comb += [l.start.eq(gather_start) for l in lanes]
        m.d.comb += [lanes_room.eq(Cat(l.room for l in lanes).all()), lanes_done.eq(Cat(l.done for l in lanes).all())]

        e = Signal(col_bits + 1)  # x elements received of the vector in RECV
        gemm_idle = Signal()

        # ---- load stream: register and memory writes, accepted while every unit is idle ----
        lw = self.load.payload
        m.d.comb += self.load.ready.eq((n_sent == n_recv) & (e == 0))
        load_fire = self.load.valid & self.load.ready
        with m.If(load_fire & (lw.sel == SEL_REG)):
            with m.Switch(lw.addr):
                for name, idx in REG_INDEX.items():
                    with m.Case(idx):
                        m.d.sync += getattr(regs, name).eq(lw.data)
        for sel, ports, key in ((SEL_A, a_m, "a"), (SEL_B, b_m, "b"), (SEL_OVERLAY, o_m, "overlay"),
                                (SEL_ROWMAP, rowmap_m, "row_map"), (SEL_BIAS, bias_m, "bias")):
            for bidx, (wp, _) in enumerate(ports):
                hit = load_fire & (lw.sel == sel) & (lw.addr[abits[key]:] == bidx)
                m.d.comb += [wp.addr.eq(lw.addr[:abits[key]]), wp.data.eq(lw.data), wp.en.eq(hit)]

        # ---- cycle stamps: first x beat accepted .. last y beat accepted, per vector ----
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        started = Array(Signal(32, name=f"start_{v}") for v in range(1 << VB))

        # ---- RECV: x beats of W elements into the first GEMM's activation memory and the input
        # buffer. AX: X is striped over act_q's C banks by its flat index f (bank f mod C, word
        # f div C), so W <= C consecutive elements land in distinct banks. XB: X row r lives in
        # act_p bank r mod R at element address (r div R) * n2 + c; a beat covers at most two
        # rows (W <= n2), each a run of consecutive addresses, one per sub-bank. With batch B,
        # vector b of a batch is block b of X' (AX: columns b*n2 .. of [X_0 | ..], n2*B wide; XB:
        # rows b*n1 .. of the stacked X_0; ..). A vector may start once the previous batch's
        # first GEMM has read X' (two batches before: X' is double-buffered) and its input-buffer
        # slot is free (the broadcast of the vector 2B before it is over). ----
        xc = Signal(32)  # XB: column (of n2) of X of the beat's first element
        # XB: its row's bank and (row // R) * n2; max(., 2): no 0-bit signals
        xr_bank, xr_base = Signal(range(max(R, 2))), Signal(32)
        xq, xrem = Signal(32), Signal(range(max(C, 2)))  # AX: f div C, f mod C of the beat's first element
        vq, vr = Signal(32), Signal(range(max(C, 2)))  # AX: f div C, f mod C of the vector's block (b * n2)
        x_fire = self.x.valid & self.x.ready
        x_last = e + W >= regs.n  # the vector's final beat
        m.d.comb += self.x.ready.eq((kp_off | (ahead(n_recv, n_g1) < 2 * NB)) & (ahead(n_recv, n_lanes) <= 2 * NB - 1))
        # X' is double-buffered: batch j in half j mod 2 of its memory (the address MSB), written by
        # RECV while the first GEMM reads the other half; the intermediate (T', U') uses half 0
        ph_bits, qh_bits = abits["act_p"] - 1, abits["act_q"] - 1  # word address in a half
        recv_half, g1_half = n_recv[bb], n_g1[bb]
        p_wr = [[(Signal(abits["act_p"], name=f"pw_addr{i}_{t}"), Signal(signed(8), name=f"pw_data{i}_{t}"),
                  Signal(name=f"pw_en{i}_{t}")) for t in range(W)] for i in range(R)]
        q_wr = [(Signal(abits["act_q"], name=f"qw_addr{j}"), Signal(signed(8), name=f"qw_data{j}"),
                 Signal(name=f"qw_en{j}")) for j in range(C)]
        for (wp, _), (a_, d_, en_) in zip([x for sub in p_sub for x in sub] + q_m,
                                          [x for sub in p_wr for x in sub] + q_wr):
            m.d.comb += [wp.addr.eq(a_), wp.data.eq(d_), wp.en.eq(en_)]
        xb_bits = abits["x_buf"] - 1  # word address in a half of a bank; the half: batch mod 2
        xel = Array(self.x.payload[w] for w in range(W))
        in_vec = Array(e + w < regs.n for w in range(W))  # not padding past the vector's end
        for b, (xb_wp, _) in enumerate(xbuf_m):  # vector b of a batch into bank b
            m.d.comb += [xb_wp.addr.eq(Cat((e >> wb)[:xb_bits], recv_half)), xb_wp.data.eq(self.x.payload.as_value()),
                         xb_wp.en.eq(x_fire & ((n_recv[:bb] == b) if NB > 1 else 1))]
        rest = regs.n2 - xc  # XB: elements of the beat still in row r (all W when >= W)
        nb_wrap = xr_bank == R - 1  # row r + 1 is in bank 0, one block of n2 further
        a0 = xr_base + xc  # XB: element address of the beat's first element
        b0 = Mux(nb_wrap, xr_base + regs.n2, xr_base) - rest  # row r + 1's element w is at b0 + w
        with m.If(x_fire & ~kp_off):
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
                    m.d.comb += [p_wr[i][t][0].eq(Cat((addr >> wb)[:ph_bits], recv_half)), p_wr[i][t][1].eq(xel[w]),
                                 p_wr[i][t][2].eq(order_xb & hit & in_vec[w])]
            for j in range(C):  # AX: bank j takes element (j - f mod C) mod C of the beat
                w_j, wrapped = bank_offset(j, xrem, C)
                wj = w_j[:max(wb, 1)]
                m.d.comb += [q_wr[j][0].eq(Cat((xq + wrapped)[:qh_bits], recv_half)), q_wr[j][1].eq(xel[wj]),
                             q_wr[j][2].eq(~order_xb & (w_j < W) & in_vec[wj])]
        with m.If(x_fire):
            m.d.sync += e.eq(e + W)
            with m.If(e == 0):
                m.d.sync += started[n_recv].eq(now)
            with m.If(xc + W >= regs.n2):  # the beat ends row r (W <= n2: at most one row change)
                m.d.sync += xc.eq(xc + W - regs.n2)
                with m.If(nb_wrap):
                    m.d.sync += [xr_bank.eq(0), xr_base.eq(xr_base + regs.n2)]
                with m.Else():
                    m.d.sync += xr_bank.eq(xr_bank + 1)
            with m.Else():
                m.d.sync += xc.eq(xc + W)
            nxt_x = dm_add(xq, xrem, 0, beat_step(W, C))
            if NB > 1:  # AX: a row of X_b ends with a beat (W divides n2); the next is n2*B on in X'
                jump = dm_add(*nxt_x, *dm["n2b1"])
                row_end = xc + W >= regs.n2
                nxt_x = Mux(row_end, jump[0], nxt_x[0]), Mux(row_end, jump[1], nxt_x[1])
            m.d.sync += [xq.eq(nxt_x[0]), xrem.eq(nxt_x[1])]
            with m.If(x_last):
                m.d.sync += [e.eq(0), n_recv.eq(n_recv + 1), xc.eq(0)]
                if NB == 1:
                    m.d.sync += [xr_bank.eq(0), xr_base.eq(0), xq.eq(0), xrem.eq(0)]
                else:  # XB: the next vector's rows follow (xr_* as the last row end left them)
                    with m.If(n_recv[:bb] == NB - 1):  # the batch's last vector
                        m.d.sync += [xr_bank.eq(0), xr_base.eq(0), xq.eq(0), xrem.eq(0), vq.eq(0), vr.eq(0)]
                    with m.Else():  # AX: the next vector's block starts n2 further in X'
                        nv = dm_add(vq, vr, *dm["n2"])
                        m.d.sync += [vq.eq(nv[0]), vr.eq(nv[1]), xq.eq(nv[0]), xrem.eq(nv[1])]

        # ---- gather: the lanes take the batch from vector n_lanes once RECV of its last vector has
        # begun and its row-sum half is free (SEND of the batch before last is over); the
        # broadcaster reads a word of each of the B vectors a cycle from the input buffer's B
        # banks, at the lanes' pace, never past what RECV has written ----
        recv_has_it = ahead(n_recv, n_lanes) >= NB  # RECV is past the batch's last vector
        recv_on_last = ahead(n_recv, n_lanes) == NB - 1
        m.d.comb += gather_start.eq(~lanes_active & (recv_has_it | (recv_on_last & (x_fire | (e != 0))))
                                    & (ahead(n_lanes, n_sent) <= NB))
        # one W-element word a cycle: b_ptr, b_count in elements (multiples of W)
        b_ptr, b_count, b_valid = Signal(col_bits + 1), Signal(col_bits + 1), Signal()  # next read, written
        b_read = Signal()
        m.d.comb += b_read.eq(lanes_active & (b_ptr < regs.n) & (recv_has_it | (b_ptr < e)) & lanes_room)
        for _, xb_rp in xbuf_m:
            m.d.comb += [xb_rp.addr.eq(Cat((b_ptr >> wb)[:xb_bits], lane_half)), xb_rp.en.eq(b_read)]
        x_words = Cat(xb_rp.data for _, xb_rp in xbuf_m)
        m.d.sync += b_valid.eq(b_read)
        with m.If(b_read):
            m.d.sync += b_ptr.eq(b_ptr + W)
        with m.If(b_valid):
            m.d.sync += b_count.eq(b_count + W)
        for lane in lanes:
            m.d.comb += [lane.x_valid.eq(b_valid), lane.x_data.eq(x_words), lane.received.eq(b_count),
                         lane.want.eq(b_ptr)]
        with m.If(gather_start):
            m.d.sync += [lanes_active.eq(1), b_ptr.eq(0), b_count.eq(0)]
        with m.Elif(lanes_active & lanes_done & recv_has_it):  # never ahead of RECV: the counters stay ordered
            m.d.sync += [lanes_active.eq(0), n_lanes.eq(n_lanes + NB)]

        # ---- GEMM engine ----
        second = Signal()  # 0: first GEMM, 1: second
        # P from A (AX g1, XB g2) or act_p; Q from B (XB g1, AX g2) or act_q
        p_from_a = Signal()
        q_from_b = Signal()
        m.d.comb += [p_from_a.eq(order_xb == second), q_from_b.eq(order_xb != second)]
        g_rows, g_cols, g_k = Signal(32), Signal(32), Signal(32)
        m.d.comb += [
            g_rows.eq(Mux(order_xb & ~second, regs.n1 << bb, regs.m1)),  # the first GEMM: a batch
            g_cols.eq(Mux(second, regs.m2, Mux(order_xb, regs.m2, regs.n2 << bb))),
            g_k.eq(Mux(order_xb == second, regs.n1, regs.n2)),
        ]
        drain_cols = Signal()
        m.d.comb += drain_cols.eq(second | order_xb)
        rb_row, cb_col = Signal(32), Signal(32)  # first row / column of the tile
        p_base, q_base = Signal(32), Signal(32)  # rb*K, cb*K (+ the vector's block of X' in G2)
        g_off = Signal(32)  # G2: the vector's block of the batch's first-GEMM result, b * K
        # G2 reads its vector's block of the first GEMM's result: AX P' rows, XB Q' columns, are
        # K * B long
        p_step = Mux(second & ~order_xb, g_k << bb, g_k)
        q_step = Mux(second & order_xb, g_k << bb, g_k)
        k = Signal(32)
        wait = Signal(range(max(G1_SETTLE, 2)))  # SETTLE
        d = Signal(range(max(R, C) + 1))
        dest_row_base, dest_col_base = Signal(32), Signal(32)  # AX g1: rb*n2; XB g1: cb*n1
        kb_col = Signal(32)  # cb // C
        # AX G1 reads X striped in act_q: (fq, fr) = divmod(k * n2 + cb, C) of the feed cycle
        fq, fr = Signal(32), Signal(range(max(C, 2)))
        rbm2 = (Signal(32, name="rbm2_q"), Signal(range(max(C, 2)), name="rbm2_r"))  # divmod(rb * m2, C)
        # Tiles alternate between the PEs' two shadow banks. A tile whose FEED has ended waits in
        # the slot of its bank (its position and destinations latched) until its last PE has
        # captured (FLUSH, R + C - 1 cycles), then drains; tiles drain in order, one at a time.
        tile_bank = Signal()  # the bank the tile now feeding captures into
        slot_names = ("rb", "cb", "dest_row", "dest_col", "kb_col", "rbm2_q")
        slots = [{n: Signal(32, name=f"slot{b}_{n}") for n in slot_names}
                 | {"rbm2_r": Signal(range(max(C, 2)), name=f"slot{b}_rbm2_r"), "valid": Signal(name=f"slot{b}_valid"),
                    "flush": Signal(range(R + C), name=f"slot{b}_flush")} for b in (0, 1)]
        drain_bank = Signal()  # the slot (bank) draining, or next to drain
        dr_rb, dr_cb, dr_dest_row, dr_dest_col, dr_kb_col = (Mux(drain_bank, slots[1][n], slots[0][n]) for n in
                                                             ("rb", "cb", "dest_row", "dest_col", "kb_col"))
        kf = (Signal(32, name="kf_q"), Signal(range(max(C, 2)), name="kf_r"))  # divmod(row * m2 + cb, C) draining
        drain_len = Mux(drain_cols, R, C)
        # tiles start every max(K, spacing): drains (D cycles each) do not overlap, and a bank's
        # results have left before the tile after next captures into it (R + C - 1 + D cycles
        # after its own FEED ended): spacing = max(D, ceil((R + C - 1 + D) / 2))
        spacing = Mux(drain_cols, tile_spacing(R, C, R), tile_spacing(R, C, C))
        gap_len = Mux(spacing > g_k, spacing - g_k, 0)
        feeding = Signal()
        f_v, f_first, f_last, f_bank = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [f_v.eq(feeding), f_first.eq(feeding & (k == 0)), f_last.eq(feeding & (k == g_k - 1)),
                     f_bank.eq(tile_bank)]
        m.d.comb += [arr.valid.eq(f_v), arr.first.eq(f_first), arr.last.eq(f_last), arr.bank.eq(f_bank),
                     arr.drain_cols.eq(drain_cols), arr.drain_bank.eq(drain_bank)]
        p_sub_sel = Signal(max(wb, 1))  # act_p sub-bank read last cycle: (p_base + k) mod W
        m.d.sync += p_sub_sel.eq((p_base + k)[:max(wb, 1)])
        for i, (_, arp) in enumerate(a_m):
            for _, prp in p_sub[i]:
                m.d.comb += [prp.addr.eq(Cat(((p_base + k) >> wb)[:ph_bits], order_xb & ~second & g1_half)),
                             prp.en.eq(feeding)]
            p_elem = Array(prp.data for _, prp in p_sub[i])[p_sub_sel] if W > 1 else p_sub[i][0][1].data
            m.d.comb += [arp.addr.eq(in_region(p_base + k, "a")), arp.en.eq(feeding),
                         arr.p[i].eq(Mux(p_from_a, arp.data, p_elem))]
        x_striped = ~order_xb & ~second  # Q = X from act_q striped by flat index (AX G1), else by column
        rot = Signal(range(max(C, 2)))  # f mod C of the striped read issued last cycle
        m.d.sync += rot.eq(fr)
        qdata = Array(qrp.data for _, qrp in q_m)
        for j, ((_, brp), (_, qrp)) in enumerate(zip(b_m, q_m)):
            _, wrapped = bank_offset(j, fr, C)
            m.d.comb += [brp.addr.eq(in_region(q_base + k, "b")), brp.en.eq(feeding),
                         qrp.addr.eq(Mux(x_striped, Cat((fq + wrapped)[:qh_bits], g1_half),
                                         (q_base + k)[:qh_bits])), qrp.en.eq(feeding)]
            rj = bank_after(rot, j, C)  # bank of column cb + j
            m.d.comb += arr.q[j].eq(Mux(q_from_b, brp.data, Mux(x_striped, qdata[rj], qrp.data)))

        # drain writes: G1 requantises (pipelined, so its write address and enable travel
        # REQUANT_STAGES cycles behind the drain), G2 writes raw int32 into kbuf half n_g2 % 2
        draining = Signal()
        m.d.comb += arr.drain.eq(draining)

        for i in range(R):
            t8 = requant(m, arr.out_row[i], regs.t_mult[:15], regs.t_shift[:6], 8, name=f"rq_row{i}")
            col = dr_cb + (C - 1) - d
            w_addr = delayed(m, (dr_dest_row + col)[:ph_bits + wb], f"pw_row{i}")  # element address in half 0
            w_en = delayed(m, draining & ~second & ~order_xb & (dr_rb + i < g_rows) & (col < g_cols), f"pw_en_row{i}")
            for t in range(W):  # one element: sub-bank (address mod W)
                with m.If(w_en & ((w_addr[:wb] == t) if W > 1 else 1)):
                    m.d.comb += [p_wr[i][t][0].eq((w_addr >> wb)[:ph_bits]), p_wr[i][t][1].eq(t8),
                                 p_wr[i][t][2].eq(1)]
        row = dr_rb + (R - 1) - d
        kb_bits = abits["kbuf"] - 1
        col_ok = Array((row < g_rows) & (dr_cb + j < g_cols) for j in range(C))
        for j in range(C):
            t8 = requant(m, arr.out_col[j], regs.t_mult[:15], regs.t_shift[:6], 8, name=f"rq_col{j}")
            w_addr = delayed(m, (dr_dest_col + row)[:qh_bits], f"qw_col{j}")  # in half 0
            w_en = delayed(m, draining & ~second & order_xb & (row < g_rows) & (dr_cb + j < g_cols), f"qw_en_col{j}")
            with m.If(w_en):
                m.d.comb += [q_wr[j][0].eq(w_addr), q_wr[j][1].eq(t8), q_wr[j][2].eq(1)]
        # G2 drains a row of K a cycle into kbuf striped by its flat index (bank f mod C, word
        # f div C): column cb + j of the row to bank (kf_r + j) mod C
        out_cols = Array(arr.out_col)
        for b in range(C):
            jb, wrapped = bank_offset(b, kf[1], C)
            jb = jb[:max(C.bit_length(), 1)]
            kwp = k_m[b][0]
            m.d.comb += [kwp.addr.eq(Cat((kf[0] + wrapped)[:kb_bits], n_g2[0])), kwp.data.eq(out_cols[jb]),
                         kwp.en.eq(draining & second & col_ok[jb])]

        # ---- SEND (hw/send.py): the vector's y once its K and row sums are complete ----
        m.submodules.send = send = SendUnit(cfg, round_down=self.mutation == "round_down")
        m.d.comb += [send_pending.eq((ahead(n_g2, n_sent) >= 1) & (ahead(n_lanes, n_sent) >= 1)),
                     send.pending.eq(send_pending), send.vector.eq(n_sent), send.regs.eq(regs)]
        for w, (_, rp) in enumerate(rowmap_m):
            wiring.connect(m, send.rowmap[w], rp)
        for j, (_, rp) in enumerate(k_m):
            wiring.connect(m, send.kbuf[j], rp)
        if cfg.lstm_cell:
            wiring.connect(m, send.bias, bias_m[0][1])
        m.d.comb += [send_slot[w].eq(send.rowsum_slot[w]) for w in range(W)]
        m.d.comb += [send_ren.eq(send.rowsum_en), *(send.rowsum[i].eq(rp.data) for i, (_, rp) in enumerate(s_m))]
        wiring.connect(m, wiring.flipped(self.y), send.y)
        with m.If(send.done):
            m.d.sync += [n_sent.eq(n_sent + 1), self.vector_cycles.eq(now - started[n_sent] + 1)]

        # ---- GEMM controller: the first GEMM of a batch once RECV has all its B vectors; then the
        # second GEMM of each vector of the batch, each once its kbuf half is free (SEND of the
        # vector before last is over) ----
        kbuf_free = ahead(n_g2, n_sent) <= 1
        def start_gemm(is_second):
            # G2 of vector b of the batch: its block starts b * K into P' (AX) / Q' (XB)
            off = n_g2[:bb] * Mux(order_xb, regs.n1, regs.n2)[:16] if is_second and NB > 1 else 0
            m.d.sync += [second.eq(is_second), rb_row.eq(0), cb_col.eq(0), p_base.eq(Mux(order_xb, 0, off)),
                         q_base.eq(Mux(order_xb, off, 0)), g_off.eq(off), k.eq(0),
                         dest_row_base.eq(0), dest_col_base.eq(0), kb_col.eq(0), fq.eq(0), fr.eq(0),
                         rbm2[0].eq(0), rbm2[1].eq(0)]

        last_drain = Signal()  # the last DRAIN cycle of a tile
        flushed = [sl["valid"] & (sl["flush"] == R + C - 2) for sl in slots]  # its last PE has captured
        for sl in slots:
            with m.If(sl["valid"] & (sl["flush"] != R + C - 2)):
                m.d.sync += sl["flush"].eq(sl["flush"] + 1)

        def begin_drain(bank):
            """Drain slot ``bank`` from the next cycle: the first row drained is the tile's last,
            rb + R - 1, whose K row starts at flat index (rb + R - 1) * m2 + cb."""
            sl = slots[bank]
            top = dm_add(sl["rbm2_q"] + sl["kb_col"], sl["rbm2_r"], *dm["r1m2"])
            m.d.sync += [d.eq(0), drain_bank.eq(bank), kf[0].eq(top[0]), kf[1].eq(top[1])]

        with m.FSM(name="drain") as dfsm:
            with m.State("IDLE"):
                for bank in (0, 1):
                    with m.If((drain_bank == bank) & flushed[bank]):
                        begin_drain(bank)
                        m.next = "DRAIN"
            with m.State("DRAIN"):  # shadow registers shift out
                below = dm_sub(kf[0], kf[1], *dm["m2"])
                m.d.sync += [d.eq(d + 1), kf[0].eq(below[0]), kf[1].eq(below[1])]
                with m.If(d == drain_len - 1):
                    m.d.comb += last_drain.eq(1)
                    m.next = "IDLE"
                    for bank in (0, 1):
                        with m.If(drain_bank == bank):
                            m.d.sync += [slots[bank]["valid"].eq(0), drain_bank.eq(1 - bank)]
                            with m.If(flushed[1 - bank]):  # the next tile is ready: drain it at once
                                begin_drain(1 - bank)
                                m.next = "DRAIN"
        # a tile whose FEED ends takes the slot of its bank (after the drain code: a slot freed in
        # this cycle may be taken again in it)
        with m.If(feeding & (k == g_k - 1)):
            for bank in (0, 1):
                sl = slots[bank]
                with m.If(tile_bank == bank):
                    m.d.sync += [sl["valid"].eq(1), sl["flush"].eq(0), sl["rb"].eq(rb_row), sl["cb"].eq(cb_col),
                                 sl["dest_row"].eq(dest_row_base), sl["dest_col"].eq(dest_col_base),
                                 sl["kb_col"].eq(kb_col), sl["rbm2_q"].eq(rbm2[0]), sl["rbm2_r"].eq(rbm2[1])]
            m.d.sync += tile_bank.eq(~tile_bank)

        gap = Signal(range(2 * (R + C) + 2))
        with m.FSM(name="gemm") as fsm:
            with m.State("IDLE"):
                with m.If(ahead(n_recv, n_g2) >= Mux(kp_off, 1, NB)):
                    with m.If(kp_off):  # nothing to compute: the vector passes in one cycle
                        m.d.sync += [n_g1.eq(n_g1 + 1), n_g2.eq(n_g2 + 1)]
                    with m.Else():
                        start_gemm(0)
                        m.next = "FEED"
            with m.State("FEED"):  # K cycles: P rows and Q columns of one tile enter the array
                m.d.sync += k.eq(k + 1)
                nxt = dm_add(fq, fr, *dm["n2b"])  # the striped X read moves one row of X' down
                m.d.sync += [fq.eq(nxt[0]), fr.eq(nxt[1])]
                with m.If(k == g_k - 1):
                    m.d.sync += [k.eq(0), gap.eq(1)]
                    # next tile: columns first, then rows
                    with m.If(cb_col + C < g_cols):
                        m.d.sync += [cb_col.eq(cb_col + C), q_base.eq(q_base + q_step),
                                     dest_col_base.eq(dest_col_base + (regs.n1 << bb)), kb_col.eq(kb_col + 1),
                                     fq.eq(kb_col + 1), fr.eq(0)]
                        m.next = "GAP"
                    with m.Elif(rb_row + R < g_rows):
                        nrow = dm_add(rbm2[0], rbm2[1], *dm["rm2"])
                        m.d.sync += [cb_col.eq(0), q_base.eq(Mux(second & order_xb, g_off, 0)), dest_col_base.eq(0),
                                     kb_col.eq(0), rb_row.eq(rb_row + R), p_base.eq(p_base + p_step),
                                     dest_row_base.eq(dest_row_base + (regs.n2 << bb)), fq.eq(0), fr.eq(0),
                                     rbm2[0].eq(nrow[0]), rbm2[1].eq(nrow[1])]
                        m.next = "GAP"
                    with m.Else():
                        m.next = "TAIL"
                    with m.If(gap_len == 0):
                        with m.If((cb_col + C < g_cols) | (rb_row + R < g_rows)):
                            m.next = "FEED"
            with m.State("GAP"):  # spacing between tiles
                m.d.sync += gap.eq(gap + 1)
                with m.If(gap == gap_len):
                    m.next = "FEED"
            with m.State("TAIL"):  # until the last tile has drained (tiles drain in order)
                with m.If(last_drain & ~Mux(drain_bank, slots[0]["valid"], slots[1]["valid"])):
                    with m.If(~second):  # X' is read: RECV may take the next batch
                        m.d.sync += [wait.eq(0), n_g1.eq(n_g1 + NB)]
                        m.next = "SETTLE"
                    with m.Else():
                        m.d.sync += n_g2.eq(n_g2 + 1)
                        m.next = "IDLE"
                        if NB > 1:
                            with m.If(n_g2[:bb] != NB - 1):  # the next vector of the batch
                                m.next = "NEXT"
            with m.State("SETTLE"):  # G1's last requantised writes land before G2 reads them
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == G1_SETTLE - 1):
                    with m.If(kbuf_free):
                        start_gemm(1)
                        m.next = "FEED"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("NEXT"):  # G2 of the batch's next vector, once its kbuf half is free
                with m.If(kbuf_free):
                    start_gemm(1)
                    m.next = "FEED"
        m.d.comb += [gemm_idle.eq(fsm.ongoing("IDLE")), feeding.eq(fsm.ongoing("FEED")),
                     draining.eq(dfsm.ongoing("DRAIN")),
                     self.status.eq(Cat(e != 0, ~gemm_idle, lanes_active, send.busy))]
        return m
