"""The AXI4-Lite control/status block of the AXI IP: the registers of ``doping.csr.CSRS``.

Writes: address and data are taken together (``awready``/``wready`` rise with both valid), then
the write acts (a layer register's word goes to the core as a register load word on ``reg_word``
and waits there until the core takes it) and ``bvalid`` answers OKAY, or SLVERR for an unmapped or
read-only offset or a partial ``wstrb``. Reads: ``arready`` while no read answer is pending; the
word is registered and held on ``rdata`` with ``rvalid`` until ``rready``. One transaction of each
kind at a time. The counters count while ``aresetn`` is high; CONTROL clears them.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from doping.arch import REGS, SEL_REG, UNITS
from doping.config import AccelConfig
from doping.csr import ADDR_BITS, BY_NAME, CSR_ID, CSRS, LAYER_BASE, field_value
from doping.hw.streams import LoadWord

OKAY, SLVERR = 0, 2


def axi_lite(prefix: str, addr_bits: int = ADDR_BITS) -> dict:
    """Members of an AXI4-Lite subordinate port (``<prefix>_awaddr`` ...), from its side."""
    m = {}
    for ch, sigs in (("aw", (("addr", In, addr_bits), ("prot", In, 3))), ("w", (("data", In, 32), ("strb", In, 4))),
                     ("b", (("resp", Out, 2),)), ("ar", (("addr", In, addr_bits), ("prot", In, 3))),
                     ("r", (("data", Out, 32), ("resp", Out, 2)))):
        fwd = Out if ch in ("b", "r") else In
        back = In if fwd is Out else Out
        for name, d, w in sigs:
            m[f"{prefix}_{ch}{name}"] = d(w)
        m[f"{prefix}_{ch}valid"], m[f"{prefix}_{ch}ready"] = fwd(1), back(1)
    return m


class CsrBlock(wiring.Component):
    """Ports: the AXI4-Lite subordinate ``s_axil_*``; from the IP: ``busy`` (unit bits),
    ``vector_cycles``, the sticky ``err_x_tlast`` and ``err_load_word`` flags, ``vector_out`` (a y tlast beat taken this cycle) and
    ``load_seen`` / ``load_word`` (a word entering the core this cycle: the layer registers'
    mirror follows it); to the IP: ``reg_word`` (layer register writes, as load words) and
    ``clear_errors``."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            **axi_lite("s_axil"),
            "busy": In(len(UNITS)), "vector_cycles": In(32), "err_x_tlast": In(1), "err_load_word": In(1),
            "vector_out": In(1),
            "load_seen": In(1), "load_word": In(LoadWord),
            "reg_word": Out(stream.Signature(LoadWord)), "clear_errors": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        layer = Array(Signal(32, name=f"layer_{r}") for r in REGS)  # mirror of the core's registers
        cycles, vectors = Signal(32), Signal(32)
        busy = Array(Signal(32, name=f"busy_{u.lower()}") for u in UNITS)
        clear_counters = Signal()
        with m.If(self.load_seen & (self.load_word.sel == SEL_REG) & (self.load_word.addr < len(REGS))):
            m.d.sync += layer[self.load_word.addr].eq(self.load_word.data[:32])
        with m.If(clear_counters):
            m.d.sync += [cycles.eq(0), vectors.eq(0), *(b.eq(0) for b in busy)]
        with m.Else():
            m.d.sync += [cycles.eq(cycles + 1), vectors.eq(vectors + self.vector_out)]
            m.d.sync += [busy[i].eq(busy[i] + self.busy[i]) for i in range(len(UNITS))]

        config = field_value("CONFIG", rows=cfg.rows, cols=cfg.cols, lanes=cfg.lanes, stream_bytes=cfg.stream_bytes,
                             log2_batch=cfg.batch.bit_length() - 1)
        status = Signal(32)
        flags = {name: lsb for name, lsb, _ in BY_NAME["STATUS"].fields}
        m.d.comb += status.eq(self.busy | (self.err_x_tlast << flags["err_x_tlast"])
                              | (self.err_load_word << flags["err_load_word"]))
        words = {"ID": Const(CSR_ID, 32), "CONFIG": Const(config, 32), "STATUS": status, "VECTORS": vectors,
                 "LAST_LATENCY": self.vector_cycles, "CYCLES": cycles,
                 **{f"BUSY_{u}": busy[i] for i, u in enumerate(UNITS)},
                 **{f"LAYER_{r.upper()}": layer[i] for i, r in enumerate(REGS)}}
        self._read(m, words)
        self._write(m, clear_counters)
        return m

    def _read(self, m, words):
        p = "s_axil_"
        rdata, rresp, rvalid = Signal(32), Signal(2), Signal()
        m.d.comb += [getattr(self, p + "arready").eq(~rvalid), getattr(self, p + "rvalid").eq(rvalid),
                     getattr(self, p + "rdata").eq(rdata), getattr(self, p + "rresp").eq(rresp)]
        with m.If(getattr(self, p + "arvalid") & ~rvalid):
            m.d.sync += [rvalid.eq(1), rdata.eq(0), rresp.eq(SLVERR)]
            with m.Switch(getattr(self, p + "araddr")):
                for c in CSRS:
                    if c.access != "WO":
                        with m.Case(c.offset):
                            m.d.sync += [rdata.eq(words[c.name]), rresp.eq(OKAY)]
                with m.Case(BY_NAME["CONTROL"].offset):
                    m.d.sync += rresp.eq(OKAY)  # reads 0
        with m.If(rvalid & getattr(self, p + "rready")):
            m.d.sync += rvalid.eq(0)

    def _write(self, m, clear_counters):
        p = "s_axil_"
        addr, data, bresp = Signal(ADDR_BITS), Signal(32), Signal(2)
        aw, w = getattr(self, p + "awvalid"), getattr(self, p + "wvalid")
        control = BY_NAME["CONTROL"]
        with m.FSM(name="csr_write"):
            with m.State("IDLE"):
                m.d.comb += [getattr(self, p + "awready").eq(aw & w), getattr(self, p + "wready").eq(aw & w)]
                with m.If(aw & w):
                    m.d.sync += [addr.eq(getattr(self, p + "awaddr")), data.eq(getattr(self, p + "wdata"))]
                    with m.If(getattr(self, p + "wstrb") != 0xF):
                        m.d.sync += bresp.eq(SLVERR)
                        m.next = "RESPOND"
                    with m.Else():
                        m.d.sync += bresp.eq(OKAY)
                        m.next = "ACT"
            with m.State("ACT"):
                is_layer = (addr >= LAYER_BASE) & (addr < LAYER_BASE + 4 * len(REGS)) & (addr[:2] == 0)
                with m.If(is_layer):
                    m.d.comb += [self.reg_word.valid.eq(1), self.reg_word.payload.sel.eq(SEL_REG),
                                 self.reg_word.payload.addr.eq((addr - LAYER_BASE) >> 2),
                                 self.reg_word.payload.data.eq(data)]
                    with m.If(self.reg_word.ready):
                        m.next = "RESPOND"
                with m.Elif(addr == control.offset):
                    m.d.comb += [self.clear_errors.eq(data[control.fields[0][1]]),
                                 clear_counters.eq(data[control.fields[1][1]])]
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += bresp.eq(SLVERR)
                    m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [getattr(self, p + "bvalid").eq(1), getattr(self, p + "bresp").eq(bresp)]
                with m.If(getattr(self, p + "bready")):
                    m.next = "IDLE"
