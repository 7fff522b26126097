"""SEND: y[i] = requant_y(sat32(K[i] + requant_ov(O[i]))) of the vector SEND is on, W outputs a
cycle through W pipelines that stall as a whole when y is not taken (docs/hardware.md).

Stages: S0 reads the row map (bank w: row i + w) and kbuf (K striped by flat index: element i + w
in bank (i + w) mod C, W <= C); S1 reads the row sums (position w's lane is in lane set w);
then the overlay requantiser (``REQUANT_STAGES``), the saturating join, on the LSTM top the bias
stage, the output requantiser, the y register: ``doping.arch.send_latency`` cycles from a read to
its beat on ``y``."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import overlay_field, vector_count_bits
from doping.config import AccelConfig, bits_for
from doping.hw.memories import Registers, read_signature, region_address
from doping.hw.requant import delayed, requant, sat32
from doping.hw.streams import y_layout
from doping.hw.stripes import bank_after, bank_offset, beat_step, divmod_add


class SendUnit(wiring.Component):
    """Ports: ``pending`` (the vector's row sums are complete and the first ``limit`` elements of
    its K are in kbuf: SEND may run up to there; ``limit`` >= m: all of K), ``vector``
    (the vector counter of SEND: bit 0 picks the kbuf half, bit log2(B) the row-sum half, the
    bits below it the vector's sum in a B-sum word), ``regs`` (stable while it runs); read ports
    of the row map (W banks), kbuf (C banks) and the bias (LSTM top); ``rowsum_slot`` /
    ``rowsum_en`` address the row-sum banks (the top lends SEND the half of its vector) whose
    ``rowsum`` words (2L banks, B sums of 32 bits) come back a cycle later; ``y``; ``done``: the
    vector's last beat is taken this cycle; ``busy``: a beat is in flight or issuing."""

    def __init__(self, cfg: AccelConfig, round_down: bool = False):
        self.cfg, self.round_down = cfg, round_down
        mem, W, C, L = cfg.memories, cfg.stream_bytes, cfg.cols, cfg.lanes
        members = {
            "pending": In(1),
            "limit": In(32),
            "vector": In(vector_count_bits(cfg)),
            "regs": In(Registers),
            "rowmap": In(read_signature(cfg, "row_map", unsigned(mem["row_map"].width))).array(W),
            "kbuf": In(read_signature(cfg, "kbuf", signed(32))).array(C),
            "rowsum_slot": Out(overlay_field(cfg).slot_bits).array(W),
            "rowsum_en": Out(1),
            "rowsum": In(unsigned(mem["ov_acc"].width)).array(2 * L),
            "y": Out(stream.Signature(y_layout(cfg))),
            "done": Out(1),
            "busy": Out(1),
        }
        if cfg.lstm_cell:
            members["bias"] = In(read_signature(cfg, "bias", signed(32))).array(W)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, regs, y = self.cfg, self.regs, self.y
        W, C, L, NB = cfg.stream_bytes, cfg.cols, cfg.lanes, cfg.batch
        wb, bb = W.bit_length() - 1, NB.bit_length() - 1
        field = overlay_field(cfg)
        kb_bits = cfg.memories["kbuf"].addr_bits - 1  # word address in a half

        sent_i, out_i = Signal(32), Signal(32)  # y elements read / taken of the vector
        sq, sr = Signal(32), Signal(range(max(C, 2)))  # divmod(sent_i, C)
        adv, y_valid, issue = Signal(), Signal(), Signal()  # the pipeline moves; a read issues
        m.d.comb += [adv.eq(~y_valid | y.ready), issue.eq(self.pending & (sent_i < regs.m) & adv
                                                       & ((sent_i + W <= self.limit) | (self.limit >= regs.m)))]

        # S0: row map and kbuf reads
        for rp in self.rowmap:
            m.d.comb += [rp.addr.eq(region_address(cfg, "row_map", sent_i >> wb, regs.layer)), rp.en.eq(adv)]
        for j, rp in enumerate(self.kbuf):
            w_j, wrapped = bank_offset(j, sr, C)
            m.d.comb += [rp.addr.eq(Cat((sq + wrapped)[:kb_bits], self.vector[0])), rp.en.eq(adv & (w_j < W))]
        tag1, kb_bank1, tag2 = Signal(2), Signal(range(max(C, 2))), Signal(2)  # tag: bit 0 valid, bit 1 last
        with m.If(adv):
            m.d.sync += [tag1.eq(Cat(issue, sent_i + W >= regs.m)), kb_bank1.eq(sr), tag2.eq(tag1)]
        # S1: row sums
        m.d.comb += [self.rowsum_slot[w].eq(self.rowmap[w].data[:field.slot_bits]) for w in range(W)]
        m.d.comb += self.rowsum_en.eq(adv)
        kdata, odata = Array(rp.data for rp in self.kbuf), Array(self.rowsum)
        tag_acc = Signal(2)
        with m.If(adv):
            m.d.sync += tag_acc.eq(delayed(m, tag2, "send_tag", adv))
        lane_bits = bits_for(L)
        y8s = []
        for w in range(W):
            kval1 = Mux(regs.kp_off[0], 0, kdata[bank_after(kb_bank1, w, C)])
            lane1 = self.rowmap[w].data[field.slot_bits:field.slot_bits + lane_bits]
            lane2, kval2 = Signal(range(max(2 * L, 2)), name=f"send_lane{w}"), Signal(signed(32), name=f"send_kval{w}")
            with m.If(adv):
                m.d.sync += [lane2.eq(Mux(self.vector[bb], lane1 + L, lane1)), kval2.eq(kval1)]
            # the vector's sum in the word (the vector counter holds while its beats are in flight)
            o_sum = odata[lane2].word_select(self.vector[:bb], 32).as_signed() if NB > 1 else odata[lane2].as_signed()
            o_al = requant(m, o_sum, regs.ov_mult[:15], regs.ov_shift[:6], 32, en=adv, name=f"rq_ov{w}")
            kv = delayed(m, kval2, f"send_k{w}", adv)  # beside the overlay requantiser
            acc = Signal(signed(32), name=f"send_acc{w}")
            with m.If(adv):
                m.d.sync += acc.eq(sat32(kv + o_al))
            if cfg.lstm_cell:
                acc = self._bias_stage(m, acc, self.bias[w], sent_i >> wb, adv, w)
            y8s.append(requant(m, acc, regs.y_mult[:15], regs.y_shift[:6], 8, en=adv, name=f"rq_y{w}",
                               _round=not self.round_down))
        if cfg.lstm_cell:  # the bias stage delays the tag by one more cycle
            tag_b = Signal(2)
            with m.If(adv):
                m.d.sync += tag_b.eq(tag_acc)
            tag_acc = tag_b
        tag_y = delayed(m, tag_acc, "send_tag_y", adv)
        m.d.comb += [y_valid.eq(tag_y[0]), y.valid.eq(y_valid), y.payload.last.eq(tag_y[1])]
        m.d.comb += [y.payload.data[w].eq(y8s[w]) for w in range(W)]

        with m.If(issue):
            nxt = divmod_add(sq, sr, 0, beat_step(W, C), C)
            m.d.sync += [sent_i.eq(sent_i + W), sq.eq(nxt[0]), sr.eq(nxt[1])]
        with m.If(y.valid & y.ready):
            m.d.sync += out_i.eq(out_i + W)
            with m.If(out_i + W >= regs.m):  # the vector's last beat
                m.d.comb += self.done.eq(1)
                m.d.sync += [out_i.eq(0), sent_i.eq(0), sq.eq(0), sr.eq(0)]
        m.d.comb += self.busy.eq(self.pending & (out_i != 0) | issue)
        return m

    def _bias_stage(self, m, acc, brp, word, adv, w):
        """The LSTM gate bias of position ``w``: sat32(acc + bias[row]), one stage after the join;
        the bias read (bank w, word ``word`` = row // W) travels beside the join's inputs."""
        m.d.comb += [brp.addr.eq(region_address(self.cfg, "bias", word, self.regs.layer)), brp.en.eq(adv)]
        bval2, bacc, biased = (Signal(signed(32), name=f"send_{n}{w}") for n in ("bval", "bacc", "biased"))
        with m.If(adv):
            m.d.sync += bval2.eq(brp.data)
        bk = delayed(m, bval2, f"send_b{w}", adv)
        with m.If(adv):
            m.d.sync += [bacc.eq(bk), biased.eq(sat32(acc + bacc))]
        return biased
