"""The accelerator as IP for a user's SoC: AXI4-Stream ports (ARM IHI 0051A names and rules) around
``hw.top.Accelerator``.

Ports (``aclk`` clocks everything; ``aresetn`` is AXI's synchronous active-low reset):

- ``s_axis_load_*``: one load word a beat (``doping.arch.pack_load_word``: sel, addr, data in the
  low ``LOAD_WORD_BITS`` bits of ``tdata``, upper bits zero), ``LOAD_WORD_BYTES`` bytes wide;
  ``tlast`` is accepted and not needed (a load's end is implied by its words).
- ``s_axis_x_*``: W = ``stream_bytes`` int8 elements a beat, byte k of ``tdata`` = element
  ``beat * W + k``; ``tlast`` on a vector's final beat. A ``tlast`` where the loaded layer's
  vector does not end (or none where it does) sets the sticky ``err_x_tlast`` flag; the vector is
  still taken by its length (n).
- ``m_axis_y_*``: W int8 outputs a beat, ``tlast`` on a vector's final beat, ``tkeep`` bit k set
  where byte k is an output (the final beat of a vector whose m is not a multiple of W is partial).

- ``s_axil_*``: AXI4-Lite control/status registers (``doping.csr``, ``hw/csr.py``): ID, config,
  status and error flags, performance counters, and the core's layer registers (written there or
  by register words on the load stream: either way).

Every stream passes a two-entry skid FIFO (``amaranth.lib.fifo.SyncFIFO``, depth 2: a beat a
cycle), so that each ``tready`` is a function of a register only, and ``m_axis_y_tready`` drives
one FIFO, not the core's whole output pipeline. An x beat waits while load words the IP has
already taken are still on their way into the core (a host sends a layer's load, waits for its
stream to go idle, then its vectors). The cost: one cycle more on each stream (2 per
vector of latency, 0 of interval), and three small FIFOs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, Mux, ResetSignal, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import LOAD_TARGETS, LOAD_WORD_BITS, LOAD_WORD_BYTES, REGS, SEL_REG, UNITS
from doping.config import AccelConfig
from doping.hw.csr import CsrBlock, axi_lite
from doping.hw.top import Accelerator



def axi_stream(prefix: str, direction, data_bytes: int, last: bool = True, keep: bool = False) -> dict:
    """Members of one AXI4-Stream interface, flat (``<prefix>_tdata`` ...), from the side of the
    component; ``direction`` In for a subordinate (sink) port, Out for a manager (source) port."""
    back = Out if direction is In else In
    members = {f"{prefix}_tdata": direction(8 * data_bytes), f"{prefix}_tvalid": direction(1),
               f"{prefix}_tready": back(1)}
    if last:
        members[f"{prefix}_tlast"] = direction(1)
    if keep:
        members[f"{prefix}_tkeep"] = direction(data_bytes)
    return members


class AxiStreamAccelerator(wiring.Component):
    """``Accelerator`` with AXI4-Stream ports, ``aclk``/``aresetn``, and the core's status and
    performance outputs: ``status`` (unit busy bits, ``doping.arch.UNITS``), ``vector_cycles``
    (the core's last vector, first x to last y), ``err_x_tlast`` and ``err_load_word`` (sticky
    until reset or CONTROL.clear_errors).
    ``mutation`` (tests only) is passed to the core."""

    def __init__(self, cfg: AccelConfig, mutation: str | None = None):
        if cfg.lstm_cell:
            raise ValueError("the AXI4-Stream wrapper is for the mat-vec top (the config has lstm_cell)")
        self.cfg, self.mutation = cfg, mutation
        W = cfg.stream_bytes
        super().__init__({
            "aclk": In(1), "aresetn": In(1),
            **axi_stream("s_axis_load", In, LOAD_WORD_BYTES),
            **axi_stream("s_axis_x", In, W),
            **axi_stream("m_axis_y", Out, W, keep=True),
            **axi_lite("s_axil"),
            "status": Out(len(UNITS)), "vector_cycles": Out(32), "err_x_tlast": Out(1), "err_load_word": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.cfg.stream_bytes
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.core = core = Accelerator(self.cfg, mutation=self.mutation)
        m.d.comb += [self.status.eq(core.status), self.vector_cycles.eq(core.vector_cycles)]

        # control/status registers; a layer register written there enters the core as a load word,
        # ahead of the load stream's
        m.submodules.csr = csr = CsrBlock(self.cfg)
        for name in axi_lite("s_axil"):
            m.d.comb += (getattr(csr, name).eq(getattr(self, name)) if getattr(csr.signature.members[name], "flow")
                         is In else getattr(self, name).eq(getattr(csr, name)))
        m.d.comb += [csr.busy.eq(core.status), csr.vector_cycles.eq(core.vector_cycles),
                     csr.err_x_tlast.eq(self.err_x_tlast), csr.err_load_word.eq(self.err_load_word),
                     csr.load_seen.eq(core.load.valid & core.load.ready),
                     csr.load_word.eq(core.load.payload),
                     csr.vector_out.eq(self.m_axis_y_tvalid & self.m_axis_y_tready & self.m_axis_y_tlast)]

        # load: tdata's low bits are the LoadWord (sel, addr, data from bit 0 up)
        m.submodules.load_skid = load = fifo.SyncFIFO(width=LOAD_WORD_BITS, depth=2)
        m.d.comb += [load.w_data.eq(self.s_axis_load_tdata[:LOAD_WORD_BITS]), load.w_en.eq(self.s_axis_load_tvalid),
                     self.s_axis_load_tready.eq(load.w_rdy), csr.reg_word.ready.eq(core.load.ready)]
        with m.If(csr.reg_word.valid):
            m.d.comb += [core.load.payload.eq(csr.reg_word.payload), core.load.valid.eq(1)]
        with m.Else():
            m.d.comb += [core.load.payload.as_value().eq(load.r_data), core.load.valid.eq(load.r_rdy),
                         load.r_en.eq(core.load.ready)]
        loading = load.r_rdy | csr.reg_word.valid

        # x: elements and tlast; tlast checked against the layer's n as the core takes the beat
        m.submodules.x_skid = xs = fifo.SyncFIFO(width=8 * W + 1, depth=2)
        m.d.comb += [xs.w_data.eq(Cat(self.s_axis_x_tdata, self.s_axis_x_tlast)), xs.w_en.eq(self.s_axis_x_tvalid),
                     self.s_axis_x_tready.eq(xs.w_rdy),
                     core.x.payload.as_value().eq(xs.r_data[:8 * W]),
                     # load words already taken here go in before any x beat behind them: the
                     # two streams are independent on the bus, so the order is restored here
                     core.x.valid.eq(xs.r_rdy & ~loading), xs.r_en.eq(core.x.ready & ~loading)]
        x_seen = Signal(32)  # elements of the vector taken so far
        with m.If(core.x.valid & core.x.ready):
            ends = x_seen + W >= core.x_len
            m.d.sync += x_seen.eq(Mux(ends, 0, x_seen + W))
            with m.If(xs.r_data[8 * W] != ends):
                m.d.sync += self.err_x_tlast.eq(1)
        self._check_load_words(m, core.load)
        with m.If(csr.clear_errors):
            m.d.sync += [self.err_x_tlast.eq(0), self.err_load_word.eq(0)]

        # y: tkeep from the layer's m as the core hands the beat over (m may change once the core
        # is idle, while its last beat still waits here)
        m.submodules.y_skid = ys = fifo.SyncFIFO(width=8 * W + 1 + W, depth=2)
        y_seen = Signal(32)
        keep = Cat(y_seen + k < core.y_len for k in range(W))
        m.d.comb += [ys.w_data.eq(Cat(core.y.payload.data.as_value(), core.y.payload.last, keep)),
                     ys.w_en.eq(core.y.valid), core.y.ready.eq(ys.w_rdy),
                     self.m_axis_y_tdata.eq(ys.r_data[:8 * W]), self.m_axis_y_tlast.eq(ys.r_data[8 * W]),
                     self.m_axis_y_tkeep.eq(ys.r_data[8 * W + 1:]), self.m_axis_y_tvalid.eq(ys.r_rdy),
                     ys.r_en.eq(self.m_axis_y_tready)]
        with m.If(core.y.valid & core.y.ready):
            m.d.sync += y_seen.eq(Mux(core.y.payload.last, 0, y_seen + W))
        return m

    def _check_load_words(self, m, load):
        """``err_load_word`` (sticky): a word entering the core names no register or memory, or a
        bank the memory does not have (the core ignores such a word)."""
        mem, w = self.cfg.memories, load.payload
        bad = Signal()
        with m.Switch(w.sel):
            with m.Case(SEL_REG):
                m.d.comb += bad.eq(w.addr >= len(REGS))
            for sel, name in LOAD_TARGETS.items():
                with m.Case(sel):
                    m.d.comb += bad.eq((w.addr >> mem[name].addr_bits) >= mem[name].banks)
            with m.Default():
                m.d.comb += bad.eq(1)
        with m.If(load.valid & load.ready & bad):
            m.d.sync += self.err_load_word.eq(1)
