"""The GEMM engine: the two Kronecker GEMMs of a vector on the systolic array, tile by tile.

W x = vec(B X A^T) for X = reshape(x): AX computes P' = A [X_0 | ..] (the first GEMM, once per
batch of B vectors, m1 x n2*B) then K = P'_b B^T per vector; XB computes U' = X' B^T (X' the B
vectors' X stacked, n1*B x m2) then K = A U'_b. Operands: P rows from A or act_p (R banks of W
sub-banks), Q columns from B or act_q (C banks; AX's first GEMM reads X striped by flat index).
Tiles of R x C results start every max(K, ``doping.arch.tile_spacing``) cycles and alternate
between the PEs' two shadow banks; a tile whose FEED has ended waits in the slot of its bank
until its last PE has captured (R + C - 1 cycles), then drains (tiles drain in order): the first
GEMM's results through R or C requantisers into act_p (AX) or act_q (XB), half 0, ``REQUANT_STAGES``
cycles later; the second's raw int32 into kbuf half ``vector`` mod 2, striped by flat index.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from doping.arch import G1_SETTLE, tile_spacing, vector_count_bits
from doping.config import AccelConfig
from doping.hw.array import SystolicArray
from doping.hw.memories import Registers, read_signature, region_address, write_signature
from doping.hw.requant import delayed, requant
from doping.hw.stripes import bank_after, bank_offset, divmod_add, divmod_sub, stride_layout

#: Per shadow bank, what a finished tile's drain needs: its first row and column, where its
#: results go (AX G1: rb*n2; XB G1: cb*n1), cb // C, and divmod(rb * m2, C).
SLOT_FIELDS = ("rb", "cb", "dest_row", "dest_col", "kb_col", "rbm2_q")


class GemmEngine(wiring.Component):
    """Ports: ``regs``, ``strides`` (stable while it runs); ``go`` (RECV holds the batch: start the
    first GEMM, or with no Kronecker part pass one vector: ``skip``); ``kbuf_free`` (the kbuf
    half of the next second GEMM is free); ``g1_half`` (the batch's half of X'); ``vector`` (the
    second GEMM's vector counter: bit 0 its kbuf half, the bits below log2(B) its block in the
    batch); ``g1_done`` (X' is read: the batch's B vectors), ``g2_done`` (a vector's K is in
    kbuf), ``skip``; ``idle``; ``g2_running`` and ``k_ready``: a second GEMM is under way and the
    first ``k_ready`` elements of its K (flat, row band by row band) are in kbuf (SEND may read
    them); ``x_avail`` / ``x_all``: elements of the vector's x received so far / all of it (XB at
    B = 1: the first GEMM starts a row band of tiles once its R rows of X are in); the memory ports
    it reads and the drain's write ports."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        R, C, W = cfg.rows, cfg.cols, cfg.stream_bytes
        super().__init__({
            "regs": In(Registers), "strides": In(stride_layout(C)),
            "go": In(1), "kbuf_free": In(1), "g1_half": In(1), "vector": In(vector_count_bits(cfg)),
            "g1_done": Out(1), "g2_done": Out(1), "skip": Out(1), "idle": Out(1),
            "g2_running": Out(1), "k_ready": Out(32), "x_avail": In(32), "x_all": In(1),
            "a": In(read_signature(cfg, "a", signed(8))).array(R),
            "b": In(read_signature(cfg, "b", signed(8))).array(C),
            "act_p_r": In(read_signature(cfg, "act_p", signed(8))).array(R, W),
            "act_q_r": In(read_signature(cfg, "act_q", signed(8))).array(C),
            "act_p_w": In(write_signature(cfg, "act_p", signed(8))).array(R, W),
            "act_q_w": In(write_signature(cfg, "act_q", signed(8))).array(C),
            "kbuf_w": In(write_signature(cfg, "kbuf", signed(32))).array(C),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, regs = self.cfg, self.regs
        R, C, NB = cfg.rows, cfg.cols, cfg.batch
        bb = NB.bit_length() - 1
        m.submodules.array = arr = SystolicArray(R, C)
        order_xb = regs.order[0]
        s = SimpleNamespace(arr=arr, order_xb=order_xb)
        s.second = Signal()  # 0: first GEMM, 1: second
        s.g_rows, s.g_cols, s.g_k = Signal(32), Signal(32), Signal(32)
        m.d.comb += [
            s.g_rows.eq(Mux(order_xb & ~s.second, regs.n1 << bb, regs.m1)),  # the first GEMM: a batch
            s.g_cols.eq(Mux(s.second, regs.m2, Mux(order_xb, regs.m2, regs.n2 << bb))),
            s.g_k.eq(Mux(order_xb == s.second, regs.n1, regs.n2)),
        ]
        s.drain_cols = Signal()
        m.d.comb += s.drain_cols.eq(s.second | order_xb)
        s.rb_row, s.cb_col = Signal(32), Signal(32)  # first row / column of the tile
        s.p_base, s.q_base = Signal(32), Signal(32)  # rb*K, cb*K (+ the vector's block of X' in G2)
        s.g_off = Signal(32)  # G2: the vector's block of the batch's first-GEMM result, b * K
        s.k = Signal(32)
        s.d = Signal(range(max(R, C) + 1))  # drain cycle
        s.dest_row_base, s.dest_col_base = Signal(32), Signal(32)  # AX g1: rb*n2; XB g1: cb*n1
        s.kb_col = Signal(32)  # cb // C
        # AX G1 reads X striped in act_q: (fq, fr) = divmod(k * n2 + cb, C) of the feed cycle
        s.fq, s.fr = Signal(32), Signal(range(max(C, 2)))
        s.rbm2 = (Signal(32, name="rbm2_q"), Signal(range(max(C, 2)), name="rbm2_r"))  # divmod(rb * m2, C)
        s.tile_bank = Signal()  # the bank the tile now feeding captures into
        s.slots = [{n: Signal(32, name=f"slot{b}_{n}") for n in SLOT_FIELDS}
                   | {"rbm2_r": Signal(range(max(C, 2)), name=f"slot{b}_rbm2_r"), "valid": Signal(name=f"slot{b}_valid"),
                      "flush": Signal(range(R + C), name=f"slot{b}_flush")} for b in (0, 1)]
        s.drain_bank = Signal()  # the slot (bank) draining, or next to drain
        s.kf = (Signal(32, name="kf_q"), Signal(range(max(C, 2)), name="kf_r"))  # divmod(row * m2 + cb, C) draining
        s.feeding, s.draining, s.last_drain = Signal(), Signal(), Signal()
        self._feed(m, s)
        self._drain_writes(m, s)
        self._drain_fsm(m, s)
        self._control(m, s)
        return m

    def _feed(self, m, s):
        """FEED: a tile's P rows and Q columns into the array, one k a cycle (a read, then the
        array's input the next cycle)."""
        cfg, regs, arr = self.cfg, self.regs, s.arr
        C, W = cfg.cols, cfg.stream_bytes
        wb = W.bit_length() - 1
        ph_bits, qh_bits = cfg.memories["act_p"].addr_bits - 1, cfg.memories["act_q"].addr_bits - 1
        p_from_a, q_from_b = s.order_xb == s.second, s.order_xb != s.second  # else act_p / act_q
        f_v, f_first, f_last, f_bank = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [f_v.eq(s.feeding), f_first.eq(s.feeding & (s.k == 0)), f_last.eq(s.feeding & (s.k == s.g_k - 1)),
                     f_bank.eq(s.tile_bank)]
        m.d.comb += [arr.valid.eq(f_v), arr.first.eq(f_first), arr.last.eq(f_last), arr.bank.eq(f_bank),
                     arr.drain_cols.eq(s.drain_cols), arr.drain_bank.eq(s.drain_bank), arr.drain.eq(s.draining)]
        p_sub_sel = Signal(max(wb, 1))  # act_p sub-bank read last cycle: (p_base + k) mod W
        m.d.sync += p_sub_sel.eq((s.p_base + s.k)[:max(wb, 1)])
        for i, arp in enumerate(self.a):
            for prp in self.act_p_r[i]:
                m.d.comb += [prp.addr.eq(Cat(((s.p_base + s.k) >> wb)[:ph_bits], s.order_xb & ~s.second & self.g1_half)),
                             prp.en.eq(s.feeding)]
            p_elem = Array(prp.data for prp in self.act_p_r[i])[p_sub_sel] if W > 1 else self.act_p_r[i][0].data
            m.d.comb += [arp.addr.eq(region_address(cfg, "a", s.p_base + s.k, regs.layer)), arp.en.eq(s.feeding),
                         arr.p[i].eq(Mux(p_from_a, arp.data, p_elem))]
        x_striped = ~s.order_xb & ~s.second  # Q = X from act_q striped by flat index (AX G1), else by column
        rot = Signal(range(max(C, 2)))  # f mod C of the striped read issued last cycle
        m.d.sync += rot.eq(s.fr)
        qdata = Array(qrp.data for qrp in self.act_q_r)
        for j, (brp, qrp) in enumerate(zip(self.b, self.act_q_r)):
            _, wrapped = bank_offset(j, s.fr, C)
            m.d.comb += [brp.addr.eq(region_address(cfg, "b", s.q_base + s.k, regs.layer)), brp.en.eq(s.feeding),
                         qrp.addr.eq(Mux(x_striped, Cat((s.fq + wrapped)[:qh_bits], self.g1_half),
                                         (s.q_base + s.k)[:qh_bits])), qrp.en.eq(s.feeding)]
            m.d.comb += arr.q[j].eq(Mux(q_from_b, brp.data, Mux(x_striped, qdata[bank_after(rot, j, C)], qrp.data)))

    def _drain_writes(self, m, s):
        """Drain writes: G1 requantises (pipelined: its write address and enable travel
        REQUANT_STAGES cycles behind the drain); G2 writes raw int32 into kbuf half ``vector`` mod 2,
        a row of K a cycle, column cb + j of the row to bank (kf_r + j) mod C. The ports are driven
        unconditionally (continuous assignments): an enable computed in an ``always @*`` block whose
        inputs never change (the drain of an order that never writes this memory) would stay X in
        a four-state simulator, and the top ORs it with RECV's."""
        cfg, regs, arr = self.cfg, self.regs, s.arr
        R, C, W = cfg.rows, cfg.cols, cfg.stream_bytes
        wb = W.bit_length() - 1
        ph_bits, qh_bits, kb_bits = (cfg.memories[k].addr_bits - 1 for k in ("act_p", "act_q", "kbuf"))
        bank = s.drain_bank
        dr_rb, dr_cb, dr_dest_row, dr_dest_col = (Mux(bank, s.slots[1][n], s.slots[0][n]) for n in
                                                  ("rb", "cb", "dest_row", "dest_col"))
        g1 = s.draining & ~s.second
        for i in range(R):
            t8 = requant(m, arr.out_row[i], regs.t_mult[:15], regs.t_shift[:6], 8, name=f"rq_row{i}")
            col = dr_cb + (C - 1) - s.d
            w_addr = delayed(m, (dr_dest_row + col)[:ph_bits + wb], f"pw_row{i}")  # element address in half 0
            w_en = delayed(m, g1 & ~s.order_xb & (dr_rb + i < s.g_rows) & (col < s.g_cols), f"pw_en_row{i}")
            for t in range(W):  # one element: sub-bank (address mod W)
                wp = self.act_p_w[i][t]
                m.d.comb += [wp.addr.eq((w_addr >> wb)[:ph_bits]), wp.data.eq(t8),
                             wp.en.eq(w_en & ((w_addr[:wb] == t) if W > 1 else 1))]
        row = dr_rb + (R - 1) - s.d
        col_ok = Array((row < s.g_rows) & (dr_cb + j < s.g_cols) for j in range(C))
        for j in range(C):
            t8 = requant(m, arr.out_col[j], regs.t_mult[:15], regs.t_shift[:6], 8, name=f"rq_col{j}")
            w_addr = delayed(m, (dr_dest_col + row)[:qh_bits], f"qw_col{j}")  # in half 0
            w_en = delayed(m, g1 & s.order_xb & (row < s.g_rows) & (dr_cb + j < s.g_cols), f"qw_en_col{j}")
            wp = self.act_q_w[j]
            m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(t8), wp.en.eq(w_en)]
        out_cols = Array(arr.out_col)
        for b, kwp in enumerate(self.kbuf_w):
            jb, wrapped = bank_offset(b, s.kf[1], C)
            jb = jb[:max(C.bit_length(), 1)]
            m.d.comb += [kwp.addr.eq(Cat((s.kf[0] + wrapped)[:kb_bits], self.vector[0])), kwp.data.eq(out_cols[jb]),
                         kwp.en.eq(s.draining & s.second & col_ok[jb])]

    def _drain_fsm(self, m, s):
        """Tiles drain in order, one at a time, each once its last PE has captured (FLUSH)."""
        R, C = self.cfg.rows, self.cfg.cols
        st = self.strides
        flushed = [sl["valid"] & (sl["flush"] == R + C - 2) for sl in s.slots]
        for sl in s.slots:
            with m.If(sl["valid"] & (sl["flush"] != R + C - 2)):
                m.d.sync += sl["flush"].eq(sl["flush"] + 1)

        def begin_drain(bank):
            """Drain slot ``bank`` from the next cycle: the first row drained is the tile's last,
            rb + R - 1, whose K row starts at flat index (rb + R - 1) * m2 + cb."""
            sl = s.slots[bank]
            top = divmod_add(sl["rbm2_q"] + sl["kb_col"], sl["rbm2_r"], st.r1m2.q, st.r1m2.r, C)
            m.d.sync += [s.d.eq(0), s.drain_bank.eq(bank), s.kf[0].eq(top[0]), s.kf[1].eq(top[1])]

        with m.FSM(name="drain") as fsm:
            with m.State("IDLE"):
                for bank in (0, 1):
                    with m.If((s.drain_bank == bank) & flushed[bank]):
                        begin_drain(bank)
                        m.next = "DRAIN"
            with m.State("DRAIN"):  # shadow registers shift out
                below = divmod_sub(s.kf[0], s.kf[1], st.m2.q, st.m2.r, C)
                m.d.sync += [s.d.eq(s.d + 1), s.kf[0].eq(below[0]), s.kf[1].eq(below[1])]
                with m.If(s.d == Mux(s.drain_cols, R, C) - 1):
                    m.d.comb += s.last_drain.eq(1)
                    m.next = "IDLE"
                    for bank in (0, 1):
                        with m.If(s.drain_bank == bank):
                            m.d.sync += [s.slots[bank]["valid"].eq(0), s.drain_bank.eq(1 - bank)]
                            with m.If(s.second & (s.slots[bank]["cb"] + C >= s.g_cols)):  # a row band of K done
                                m.d.sync += self.k_ready.eq(self.k_ready + self.regs.m2 * R)
                            with m.If(flushed[1 - bank]):  # the next tile is ready: drain it at once
                                begin_drain(1 - bank)
                                m.next = "DRAIN"
        m.d.comb += s.draining.eq(fsm.ongoing("DRAIN"))
        # a tile whose FEED ends takes the slot of its bank (after the drain code: a slot freed in
        # this cycle may be taken again in it)
        with m.If(s.feeding & (s.k == s.g_k - 1)):
            for bank in (0, 1):
                sl = s.slots[bank]
                with m.If(s.tile_bank == bank):
                    m.d.sync += [sl["valid"].eq(1), sl["flush"].eq(0), sl["rb"].eq(s.rb_row), sl["cb"].eq(s.cb_col),
                                 sl["dest_row"].eq(s.dest_row_base), sl["dest_col"].eq(s.dest_col_base),
                                 sl["kb_col"].eq(s.kb_col), sl["rbm2_q"].eq(s.rbm2[0]), sl["rbm2_r"].eq(s.rbm2[1])]
            m.d.sync += s.tile_bank.eq(~s.tile_bank)

    def _control(self, m, s):
        """The first GEMM of a batch once ``go``; then the second GEMM of each vector of the batch,
        each once ``kbuf_free``. Tiles go columns first, then rows, every max(K, spacing) cycles:
        drains (D cycles each) do not overlap, and a bank's results have left before the tile
        after next captures into it (``tile_spacing``)."""
        cfg, regs, st = self.cfg, self.regs, self.strides
        R, C, NB = cfg.rows, cfg.cols, cfg.batch
        bb = NB.bit_length() - 1
        kp_off, order_xb, second = regs.kp_off[0], s.order_xb, s.second
        spacing = Mux(s.drain_cols, tile_spacing(R, C, R), tile_spacing(R, C, C))
        gap_len = Mux(spacing > s.g_k, spacing - s.g_k, 0)
        # G2 reads its vector's block of the first GEMM's result: AX P' rows, XB Q' columns, are K * B long
        p_step = Mux(second & ~order_xb, s.g_k << bb, s.g_k)
        q_step = Mux(second & order_xb, s.g_k << bb, s.g_k)
        wait = Signal(range(max(G1_SETTLE, 2)))  # SETTLE
        gap = Signal(range(2 * (R + C) + 2))
        # XB at B = 1: the first GEMM's row band of tiles waits for its R rows of X (R * n2 elements)
        band_need, band_step = Signal(32), Signal(32)
        m.d.comb += band_step.eq(regs.n2 * R)
        gated = (order_xb & ~second) if NB == 1 else Const(0, 1)
        next_need = Mux(s.cb_col + C < s.g_cols, band_need, band_need + band_step)  # the next tile's band
        band_ok, next_ok = ((~gated | self.x_all | (self.x_avail >= need)) for need in (band_need, next_need))

        def start_gemm(is_second):
            # G2 of vector b of the batch: its block starts b * K into P' (AX) / Q' (XB)
            off = self.vector[:bb] * Mux(order_xb, regs.n1, regs.n2)[:16] if is_second and NB > 1 else 0
            m.d.sync += [second.eq(is_second), s.rb_row.eq(0), s.cb_col.eq(0), s.p_base.eq(Mux(order_xb, 0, off)),
                         self.k_ready.eq(0), band_need.eq(band_step),
                         s.q_base.eq(Mux(order_xb, off, 0)), s.g_off.eq(off), s.k.eq(0),
                         s.dest_row_base.eq(0), s.dest_col_base.eq(0), s.kb_col.eq(0), s.fq.eq(0), s.fr.eq(0),
                         s.rbm2[0].eq(0), s.rbm2[1].eq(0)]

        with m.FSM(name="gemm") as fsm:
            with m.State("IDLE"):
                with m.If(self.go):
                    with m.If(kp_off):  # nothing to compute: the vector passes in one cycle
                        m.d.comb += self.skip.eq(1)
                    with m.Else():
                        start_gemm(0)
                        m.next = "FEED"
            with m.State("FEED"):  # K cycles: P rows and Q columns of one tile enter the array
                m.d.sync += s.k.eq(s.k + 1)
                nxt = divmod_add(s.fq, s.fr, st.n2b.q, st.n2b.r, C)  # the striped X read moves one row of X' down
                m.d.sync += [s.fq.eq(nxt[0]), s.fr.eq(nxt[1])]
                with m.If(s.k == s.g_k - 1):
                    m.d.sync += [s.k.eq(0), gap.eq(1)]
                    with m.If(s.cb_col + C < s.g_cols):
                        m.d.sync += [s.cb_col.eq(s.cb_col + C), s.q_base.eq(s.q_base + q_step),
                                     s.dest_col_base.eq(s.dest_col_base + (regs.n1 << bb)), s.kb_col.eq(s.kb_col + 1),
                                     s.fq.eq(s.kb_col + 1), s.fr.eq(0)]
                        m.next = "GAP"
                    with m.Elif(s.rb_row + R < s.g_rows):
                        nrow = divmod_add(s.rbm2[0], s.rbm2[1], st.rm2.q, st.rm2.r, C)
                        m.d.sync += [s.cb_col.eq(0), s.q_base.eq(Mux(second & order_xb, s.g_off, 0)),
                                     band_need.eq(band_need + band_step),
                                     s.dest_col_base.eq(0), s.kb_col.eq(0), s.rb_row.eq(s.rb_row + R),
                                     s.p_base.eq(s.p_base + p_step),
                                     s.dest_row_base.eq(s.dest_row_base + (regs.n2 << bb)), s.fq.eq(0), s.fr.eq(0),
                                     s.rbm2[0].eq(nrow[0]), s.rbm2[1].eq(nrow[1])]
                        m.next = "GAP"
                    with m.Else():
                        m.next = "TAIL"
                    with m.If((gap_len == 0) & next_ok):
                        with m.If((s.cb_col + C < s.g_cols) | (s.rb_row + R < s.g_rows)):
                            m.next = "FEED"
            with m.State("GAP"):  # spacing between tiles, and a band's rows of X
                with m.If(gap < gap_len):
                    m.d.sync += gap.eq(gap + 1)
                with m.If((gap >= gap_len) & band_ok):
                    m.next = "FEED"
            with m.State("TAIL"):  # until the last tile has drained (tiles drain in order)
                with m.If(s.last_drain & ~Mux(s.drain_bank, s.slots[0]["valid"], s.slots[1]["valid"])):
                    with m.If(~second):  # X' is read: RECV may take the next batch
                        m.d.sync += wait.eq(0)
                        m.d.comb += self.g1_done.eq(1)
                        m.next = "SETTLE"
                    with m.Else():
                        m.d.comb += self.g2_done.eq(1)
                        m.next = "IDLE"
                        if NB > 1:
                            with m.If(self.vector[:bb] != NB - 1):  # the next vector of the batch
                                m.next = "NEXT"
            with m.State("SETTLE"):  # G1's last requantised writes land before G2 reads them
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == G1_SETTLE - 1):
                    with m.If(self.kbuf_free):
                        start_gemm(1)
                        m.next = "FEED"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("NEXT"):  # G2 of the batch's next vector, once its kbuf half is free
                with m.If(self.kbuf_free):
                    start_gemm(1)
                    m.next = "FEED"
        m.d.comb += [self.idle.eq(fsm.ongoing("IDLE")), s.feeding.eq(fsm.ongoing("FEED")),
                     self.g2_running.eq(second & (fsm.ongoing("FEED") | fsm.ongoing("GAP") | fsm.ongoing("TAIL")))]
