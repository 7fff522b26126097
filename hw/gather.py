"""The sparse-overlay gather unit (EIE-style: input broadcast, rows owned by lanes): its lanes
(``GatherLane``) and the broadcaster feeding them (``GatherUnit``).

Input elements are broadcast to every lane in order, ``beat`` (W) elements a cycle of each of
the ``batch`` (B) vectors of a batch, and kept in small per-lane windows of ``window`` int8
registers, one window per vector (element j at slot j mod window). The lane streams its overlay
entries (col, slot, val, first, end; column-major, ``doping.hw.loader``) from its own memory and
consumes one per cycle once ``x[col]`` has arrived, accumulating ``x_b[col] * val`` for every
vector b into the B int32 row sums at ``slot`` of its row-sum memory (a word of B sums, sum b in
bits 32b .. 32b + 31; read-modify-write; ``first`` starts a row at zero): one entry read feeds B
MACs. ``room`` tells the broadcaster that the word of elements ``want`` .. ``want + W - 1`` may
be written: the lane no longer needs the elements ``window`` places before them.

Pipeline (one entry per cycle): fetch (entry memory, synchronous read) -> wait for x and read
the window + the row sum (synchronous, transparent to this lane's write) -> multiply-accumulate
and write. A lane started at cycle 0 has its first entry in the wait stage at cycle 2; ``done``
rises the cycle after its ``end`` word reaches that stage, when every row sum is written.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from doping.arch import OverlayField, overlay_field
from doping.config import bits_for
from doping.hw.memories import Registers, read_signature, region_address


class GatherLane(wiring.Component):
    def __init__(self, field: OverlayField, entry_addr_bits: int, window: int, beat: int = 1, batch: int = 1,
                 _col_offset: int = 0):
        assert window >= 2 and window & (window - 1) == 0, "the input window is a power of two, at least 2"
        assert beat & (beat - 1) == 0 and 2 * beat <= window, "a broadcast word is a power of two, half the window"
        self.field, self.window, self.beat, self.batch = field, window, beat, batch
        self._col_offset = _col_offset  # non-zero only in mutation tests: gathers x[col + 1]
        cb, sb = field.col_bits, field.slot_bits
        super().__init__({
            "start": In(1),
            "done": Out(1, init=1),
            # input broadcast: elements ``received`` .. + W - 1 of each vector b (a word per vector,
            # vector b's element w in bits 8(bW + w) .. + 7) are written when ``x_valid``;
            # ``received`` elements have arrived; ``room``: the word starting at element ``want``
            # may be written next
            "x_valid": In(1), "x_data": In(8 * beat * batch), "received": In(cb + 1),
            "want": In(cb + 1), "room": Out(1),
            # overlay entry memory read port (synchronous)
            "ent_addr": Out(entry_addr_bits), "ent_en": Out(1), "ent_data": In(field.width),
            # row-sum memory, B sums a word: read port (synchronous, transparent to the write
            # port), write port
            "acc_raddr": Out(sb), "acc_ren": Out(1), "acc_rdata": In(32 * batch),
            "acc_waddr": Out(sb), "acc_wdata": Out(32 * batch), "acc_wen": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cb, sb, F, W, B = self.field.col_bits, self.field.slot_bits, self.window, self.beat, self.batch
        wbits, wb = F.bit_length() - 1, W.bit_length() - 1
        wins = [Array(Signal(signed(8), name=f"win{b}_{k}" if B > 1 else f"win{k}") for k in range(F))
                for b in range(B)]
        for b, win in enumerate(wins):
            for k in range(F):  # slot k takes element k mod W of the word landing on its W-slot group
                with m.If(self.x_valid & (self.received[wb:wbits] == k >> wb)):
                    m.d.sync += win[k].eq(self.x_data.word_select(b * W + k % W, 8))

        ptr = Signal.like(self.ent_addr)
        issuing = Signal()
        v1 = Signal()  # an entry is in the wait stage
        d = self.ent_data
        col = d[:cb]
        slot = d[cb:cb + sb]
        val = d[cb + sb:cb + sb + 8].as_signed()
        first = d[cb + sb + 8]
        end = d[cb + sb + 9]

        ready_x = col < self.received
        consume = Signal()
        m.d.comb += consume.eq(v1 & ~end & ready_x)
        advance = issuing & (~v1 | consume)
        m.d.comb += [self.ent_addr.eq(ptr), self.ent_en.eq(advance),
                     self.acc_raddr.eq(slot), self.acc_ren.eq(consume & ~first)]
        # lowest column still needed: the waiting entry's (0 before the first arrives)
        low = Mux(v1, col, 0)
        m.d.comb += self.room.eq(self.done | (v1 & end) | (self.want + (W - 1) < low + F))

        with m.If(self.start):
            m.d.sync += [ptr.eq(0), issuing.eq(1), v1.eq(0), self.done.eq(0)]
        with m.Else():
            with m.If(advance):
                m.d.sync += [ptr.eq(ptr + 1), v1.eq(1)]
            with m.If(v1 & end):
                m.d.sync += [issuing.eq(0), v1.eq(0), self.done.eq(1)]

        v2, val2, first2, slot2 = Signal(), Signal(signed(8)), Signal(), Signal(sb)
        x2 = [Signal(signed(8), name=f"x2_{b}" if B > 1 else "x2") for b in range(B)]
        x_slot = (col + self._col_offset)[:wbits]
        m.d.sync += [v2.eq(consume & ~self.start), val2.eq(val), first2.eq(first), slot2.eq(slot)]
        m.d.sync += [x2[b].eq(wins[b][x_slot]) for b in range(B)]
        m.d.comb += [self.acc_waddr.eq(slot2), self.acc_wen.eq(v2)]
        for b in range(B):  # B MACs on the one entry
            m.d.comb += self.acc_wdata.word_select(b, 32).eq(
                Mux(first2, 0, self.acc_rdata.word_select(b, 32).as_signed()) + x2[b] * val2)
        return m


class GatherUnit(wiring.Component):
    """The L gather lanes and the broadcaster that feeds them (docs/hardware.md).

    ``start`` begins a batch (the lanes restart; the broadcaster from element 0); the broadcaster
    reads a word of each of the B vectors a cycle from the input buffer's B banks (half ``half``),
    at the lanes' pace (``room``) and never past what RECV has written (``written`` elements of
    the batch's last vector, all of them once ``complete``). ``done`` pulses when every lane has
    written its row sums and RECV is complete. Each lane reads its overlay region of the resident
    layer (``regs.layer``) and hands its row-sum reads and writes (``rowsum_*``, index l) to the
    top, which routes them to the half of the batch's parity."""

    def __init__(self, cfg, col_offset: int = 0):
        self.cfg, self.col_offset, self.field = cfg, col_offset, overlay_field(cfg)
        L, W, NB, sb = cfg.lanes, cfg.stream_bytes, cfg.batch, self.field.slot_bits
        mem = cfg.memories
        col_bits = self.field.col_bits
        super().__init__({
            "start": In(1), "active": Out(1), "done": Out(1),
            "written": In(col_bits + 1), "complete": In(1), "half": In(1),
            "regs": In(Registers),
            "overlay": In(read_signature(cfg, "overlay", unsigned(mem["overlay"].width))).array(L),
            "x_buf": In(read_signature(cfg, "x_buf", unsigned(8 * W))).array(NB),
            "rowsum_raddr": Out(sb).array(L), "rowsum_ren": Out(1).array(L), "rowsum_rdata": In(32 * NB).array(L),
            "rowsum_waddr": Out(sb).array(L), "rowsum_wdata": Out(32 * NB).array(L), "rowsum_wen": Out(1).array(L),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, regs = self.cfg, self.regs
        L, W, NB = cfg.lanes, cfg.stream_bytes, cfg.batch
        wb = W.bit_length() - 1
        xb_bits = cfg.memories["x_buf"].addr_bits - 1  # word address in a half of a bank
        lanes = []
        for l in range(L):
            lane = GatherLane(self.field, bits_for(cfg.memories["overlay"].layer_depth), cfg.x_window, W, NB,
                              _col_offset=self.col_offset)
            m.submodules[f"lane{l}"] = lane
            lanes.append(lane)
            rp = self.overlay[l]
            m.d.comb += [rp.addr.eq(region_address(cfg, "overlay", lane.ent_addr, regs.layer)), rp.en.eq(lane.ent_en),
                         lane.ent_data.eq(rp.data), lane.start.eq(self.start),
                         self.rowsum_raddr[l].eq(lane.acc_raddr), self.rowsum_ren[l].eq(lane.acc_ren),
                         lane.acc_rdata.eq(self.rowsum_rdata[l]), self.rowsum_waddr[l].eq(lane.acc_waddr),
                         self.rowsum_wdata[l].eq(lane.acc_wdata), self.rowsum_wen[l].eq(lane.acc_wen)]
        room, lanes_done = Cat(lane.room for lane in lanes).all(), Cat(lane.done for lane in lanes).all()

        # one W-element word a cycle: ptr (next read) and count (written), in elements (multiples of W)
        ptr, count, valid, read = Signal.like(self.written), Signal.like(self.written), Signal(), Signal()
        m.d.comb += read.eq(self.active & (ptr < regs.n) & (self.complete | (ptr < self.written)) & room)
        for rp in self.x_buf:
            m.d.comb += [rp.addr.eq(Cat((ptr >> wb)[:xb_bits], self.half)), rp.en.eq(read)]
        words = Cat(rp.data for rp in self.x_buf)
        m.d.sync += valid.eq(read)
        with m.If(read):
            m.d.sync += ptr.eq(ptr + W)
        with m.If(valid):
            m.d.sync += count.eq(count + W)
        for lane in lanes:
            m.d.comb += [lane.x_valid.eq(valid), lane.x_data.eq(words), lane.received.eq(count), lane.want.eq(ptr)]
        with m.If(self.start):
            m.d.sync += [self.active.eq(1), ptr.eq(0), count.eq(0)]
        with m.Elif(self.active & lanes_done & self.complete):  # never ahead of RECV: the counters stay ordered
            m.d.sync += self.active.eq(0)
            m.d.comb += self.done.eq(1)
        return m
