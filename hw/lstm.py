"""The LSTM top: the whole doped LSTM stack on chip, token by token (docs/hardware.md, "LSTM").

Around the mat-vec accelerator (``Accelerator`` with its bias stage) sit the cell unit
(``LSTMCell``), the hidden state of every resident layer (``h_state``), the hand-over buffer
between layers (``h_next``) and a sequencer. Per token and layer k (resident region k):

  SWITCH  the layer's 16 register words from ``layer_regs`` into the accelerator (the mat-vec
          word, bits 0-31) and the cell registers (bits 32-63), one a cycle
  FEED    v = [x; h] into the accelerator: x from the ``tok`` stream (layer 0) or ``h_next``
          (the layer below's h), then h from ``h_state`` (0 on a sequence's first token)
  WAIT    the accelerator's 4H pre-activations go through the cell; its H results are written
          to ``h_state`` and to ``h_next`` or, on the last layer, leave on ``h``
          (B sequences: B vectors in FEED, B x H results in WAIT)

Streams: ``load`` (the accelerator's load words plus SEL_LAYER_REGS, SEL_GATE_LUT and
SEL_CELL_LUT, from ``hw.loader.lstm_load_words``; taken while no token is in flight), ``tok``
(int8 embedding elements, I per token in I / W beats of W = ``stream_bytes``; ``first`` on a
sequence's first token resets its h and c) and ``h`` (the last layer's int8 h at its output scale,
H per token, W a beat; logits stay on the host). W divides every layer's I and H.
With the config's ``lstm_batch`` B > 1 a step takes one token of each of B independent sequences
(lane by lane on ``tok``, each with its own ``first``), FEED streams their B vectors back to back
through each layer, and ``h`` carries their B results in lane order; the state is per sequence.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import (CELL_REG_INDEX, LAYER_REG_WORDS, SEL_CELL_LUT, SEL_GATE_LUT, SEL_LAYER_REGS, SEL_REG)
from doping.config import AccelConfig, bits_for
from doping.hw.cell import LSTMCell, hidden_bits, state_offset
from doping.hw.memories import banks, region_address
from doping.hw.streams import LoadWord, h_layout, token_layout, x_layout
from doping.hw.top import Accelerator

class FeedSource(enum.Enum, shape=2):
    """Where FEED's next element of [x; h] comes from: the token stream (x), the previous layer's
    h of this step (``h_next``: a deeper layer's x), this layer's own h of the last step
    (``h_state``), or zero (a sequence's first token)."""
    TOKEN = 0
    H_NEXT = 1
    H_STATE = 2
    ZERO = 3


class LSTMAccelerator(wiring.Component):
    def __init__(self, cfg: AccelConfig, mutation: str | None = None):
        if not cfg.lstm_cell:
            raise ValueError("the LSTM top needs a config with lstm_cell = 1")
        self.cfg, self.mutation = cfg, mutation
        super().__init__({
            "load": In(stream.Signature(LoadWord)),
            "tok": In(stream.Signature(token_layout(cfg))),
            "h": Out(stream.Signature(h_layout(cfg))),
            "status": Out(4),  # SWITCH, FEED, WAIT, cell busy
        })

    def elaborate(self, platform):
        m = Module()
        cfg, mem = self.cfg, self.cfg.memories
        hb = hidden_bits(cfg)
        m.submodules.accel = acc = Accelerator(cfg, self.mutation)
        m.submodules.cell = cell = LSTMCell(cfg)
        wiring.connect(m, acc.y, cell.p)

        (regs_w, regs_r), = banks(m, "layer_regs", 1, mem["layer_regs"].depth, unsigned(64))
        W, wb = cfg.stream_bytes, cfg.stream_bytes.bit_length() - 1  # lane t: elements t mod W
        h_state = banks(m, "h_state", W, mem["h_state"].depth, signed(8))
        h_next = banks(m, "h_next", W, mem["h_next"].depth, signed(8))

        B = cfg.lstm_batch
        region, fresh = Signal(bits_for(cfg.resident_layers)), Signal(B)  # fresh: bit b, sequence b restarts
        creg = {name: Signal(32, name=f"cell_{name}") for name in CELL_REG_INDEX}
        m.d.comb += [cell.region.eq(region), cell.fresh.eq(fresh), cell.hidden.eq(creg["hidden"])]
        for r in ("cell", "h", "out"):
            m.d.comb += [getattr(cell, f"{r}_mult").eq(creg[f"{r}_mult"]),
                         getattr(cell, f"{r}_shift").eq(creg[f"{r}_shift"])]

        # ---- host load words: to the layer registers, the tables, or the accelerator ----
        lw = self.load.payload
        idle = Signal()
        own_sel = (lw.sel == SEL_LAYER_REGS) | (lw.sel == SEL_GATE_LUT) | (lw.sel == SEL_CELL_LUT)
        host_acc = Signal()  # the host drives the accelerator's load stream (else SWITCH does)
        m.d.comb += [host_acc.eq(idle & ~own_sel), self.load.ready.eq(idle & (own_sel | acc.load.ready))]
        host_fire = self.load.valid & self.load.ready
        m.d.comb += [regs_w.addr.eq(lw.addr), regs_w.data.eq(lw.data),
                     regs_w.en.eq(host_fire & (lw.sel == SEL_LAYER_REGS)),
                     cell.table.en.eq(host_fire & ((lw.sel == SEL_GATE_LUT) | (lw.sel == SEL_CELL_LUT))),
                     cell.table.which.eq(lw.sel == SEL_CELL_LUT), cell.table.addr.eq(lw.addr),
                     cell.table.data.eq(lw.data[:16])]

        # ---- cell results: h_state always; h_next, or the h stream on the last layer ----
        last = creg["last"][0]
        res = cell.h.payload
        m.d.comb += [self.h.valid.eq(cell.h.valid & last), self.h.payload.eq(res.out),
                     cell.h.ready.eq(~last | self.h.ready)]
        res_fire = cell.h.valid & cell.h.ready
        self._store_h(m, res, res_fire, last, region, h_state, h_next)
        results = Signal(hb + 1 + bits_for(B))  # result words of the running layer (B x H / W)

        # ---- FEED's source stage: one beat of [x; h] (W elements, all of x or all of h) a cycle, from
        # tok, h_next or h_state; the vectors of the B sequences back to back ----
        e = Signal(32)  # next beat of sequence seq's v to fetch
        seq = Signal(range(B + 1))  # B: every vector fetched
        inputs = creg["inputs"] >> wb  # beats of x
        n = inputs + (creg["hidden"] >> wb)
        src_valid, src, tok_data = Signal(), Signal(FeedSource), Signal(x_layout(cfg))
        feed_adv = Signal()
        m.d.comb += [feed_adv.eq(~src_valid | acc.x.ready), acc.x.valid.eq(src_valid)]
        for t, ((_, hs_r), (_, hn_r)) in enumerate(zip(h_state, h_next)):
            m.d.comb += [acc.x.payload[t].eq(Array([tok_data[t], hn_r.data, hs_r.data, 0])[src.as_value()]),  # FeedSource order
                         hn_r.addr.eq(state_offset(cfg, e, seq)), hn_r.en.eq(feed_adv),
                         hs_r.addr.eq(region_address(cfg, "h_state", state_offset(cfg, e - inputs, seq), region)),
                         hs_r.en.eq(feed_adv)]

        # ---- the sequencer ----
        word = Signal(range(LAYER_REG_WORDS + 1))  # SWITCH: next layer_regs word to read
        word_valid, word_idx = Signal(), Signal(range(LAYER_REG_WORDS))
        m.d.comb += [regs_r.addr.eq(region_address(cfg, "layer_regs", word, region)), regs_r.en.eq(acc.load.ready)]
        with m.If(host_acc):
            m.d.comb += [acc.load.valid.eq(self.load.valid), acc.load.payload.eq(self.load.payload)]
        with m.Else():
            m.d.comb += [acc.load.valid.eq(word_valid), acc.load.payload.sel.eq(SEL_REG),
                         acc.load.payload.addr.eq(word_idx), acc.load.payload.data.eq(regs_r.data[:32])]

        with m.FSM(name="sequencer") as fsm:
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(self.tok.valid & ~self.load.valid):
                    m.d.sync += [region.eq(0), word.eq(0), word_valid.eq(0)]
                    m.next = "SWITCH"
            with m.State("SWITCH"):  # one word a cycle (the accelerator is idle: it takes each at once)
                with m.If(acc.load.ready):
                    m.d.sync += [word_valid.eq(word < LAYER_REG_WORDS), word_idx.eq(word),
                                 word.eq(word + (word < LAYER_REG_WORDS))]
                    with m.If(word_valid):
                        with m.Switch(word_idx):
                            for name, i in CELL_REG_INDEX.items():
                                with m.Case(i):
                                    m.d.sync += creg[name].eq(regs_r.data[32:])
                    with m.If(word_valid & (word_idx == LAYER_REG_WORDS - 1)):
                        m.d.sync += [word_valid.eq(0), e.eq(0), seq.eq(0), src_valid.eq(0), results.eq(0)]
                        m.next = "FEED"
            with m.State("FEED"):
                with m.If(feed_adv):
                    with m.If(seq < B):
                        with m.If(e == n - 1):  # the next element starts the next sequence's vector
                            m.d.sync += [e.eq(0), seq.eq(seq + 1)]
                        with m.Else():
                            m.d.sync += e.eq(e + 1)
                        with m.If(e < inputs):
                            with m.If(region == 0):
                                m.d.comb += self.tok.ready.eq(1)
                                m.d.sync += [src_valid.eq(self.tok.valid), src.eq(FeedSource.TOKEN), tok_data.eq(self.tok.payload.data)]
                                with m.If(~self.tok.valid):
                                    m.d.sync += [e.eq(e), seq.eq(seq)]  # wait for the element
                                with m.Elif(e == 0):  # a token's first element says whether its sequence restarts
                                    m.d.sync += fresh.bit_select(seq, 1).eq(self.tok.payload.first)
                            with m.Else():
                                m.d.sync += [src_valid.eq(1), src.eq(FeedSource.H_NEXT)]
                        with m.Else():
                            m.d.sync += [src_valid.eq(1),  # a sequence's first token: h is zero
                                         src.eq(Mux(fresh.bit_select(seq, 1), FeedSource.ZERO, FeedSource.H_STATE))]
                    with m.Else():
                        m.d.sync += src_valid.eq(0)
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(results == (creg["hidden"] >> wb) * B):
                    with m.If(last):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [region.eq(region + 1), word.eq(0), word_valid.eq(0)]
                        m.next = "SWITCH"
        with m.If(res_fire):
            m.d.sync += results.eq(results + 1)
        m.d.comb += self.status.eq(Cat(fsm.ongoing("SWITCH"), fsm.ongoing("FEED"), fsm.ongoing("WAIT"), cell.busy))
        return m

    def _store_h(self, m, res, fire, last, region, h_state, h_next):
        """A word of cell results (``res``, taken when ``fire``): element t to lane t's bank of
        ``h_state`` (this layer's region), and of ``h_next`` unless this is the last layer."""
        cfg = self.cfg
        at = state_offset(cfg, res.index, res.seq)
        for t, ((hs_w, _), (hn_w, _)) in enumerate(zip(h_state, h_next)):
            m.d.comb += [hs_w.addr.eq(region_address(cfg, "h_state", at, region)), hs_w.data.eq(res.own[t]),
                         hs_w.en.eq(fire), hn_w.addr.eq(at), hn_w.data.eq(res.out[t]), hn_w.en.eq(fire & ~last)]
