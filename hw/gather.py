"""One lane of the sparse-overlay gather unit.

The lane streams its overlay entries (column, value, last-in-row, end) from its own memory, one
per cycle, gathers ``x[col]`` from its private copy of the input vector, and accumulates the
products of one output row in an int32 register; on ``last`` it writes the row's sum into its
row-sum memory at the next slot. A three-stage pipeline: entry read, x read, multiply-accumulate.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class GatherLane(wiring.Component):
    def __init__(self, col_bits: int, entry_addr_bits: int, slot_bits: int, _col_offset: int = 0):
        self.col_bits = col_bits
        self._col_offset = _col_offset  # non-zero only in mutation tests: an off-by-one gather
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            # overlay entry memory read port (synchronous)
            "ent_addr": Out(entry_addr_bits), "ent_en": Out(1), "ent_data": In(col_bits + 10),
            # input-vector copy read port (synchronous)
            "x_addr": Out(col_bits), "x_en": Out(1), "x_data": In(signed(8)),
            # row-sum memory write port
            "sum_addr": Out(slot_bits), "sum_data": Out(signed(32)), "sum_en": Out(1),
            # rows whose sums are written (readable from the row-sum memory from this cycle on)
            "rows_done": Out(slot_bits + 1),
        })

    def elaborate(self, platform):
        m = Module()
        cb = self.col_bits
        ptr = Signal.like(self.ent_addr)
        issuing = Signal()
        v1 = Signal()  # entry data valid this cycle
        v2, val2, last2 = Signal(), Signal(signed(8)), Signal()
        acc = Signal(signed(32))
        slot = Signal.like(self.sum_addr)
        col = self.ent_data[:cb]
        val = self.ent_data[cb:cb + 8].as_signed()
        last = self.ent_data[cb + 8]
        end = self.ent_data[cb + 9]

        m.d.comb += [self.ent_addr.eq(ptr), self.ent_en.eq(issuing), self.x_addr.eq(col + self._col_offset),
                     self.x_en.eq(v1), self.busy.eq(issuing | v1 | v2)]
        with m.If(self.start):
            m.d.sync += [ptr.eq(0), issuing.eq(1), v1.eq(0), v2.eq(0), acc.eq(0), slot.eq(0), self.rows_done.eq(0)]
        with m.Else():
            with m.If(issuing):
                m.d.sync += ptr.eq(ptr + 1)
            m.d.sync += v1.eq(issuing)
            stop = v1 & end
            with m.If(stop):
                m.d.sync += [issuing.eq(0), v1.eq(0)]
            m.d.sync += [v2.eq(v1 & ~end), val2.eq(val), last2.eq(last)]
            total = Signal(signed(32))
            m.d.comb += total.eq(acc + self.x_data * val2)
            with m.If(v2):
                with m.If(last2):
                    m.d.comb += [self.sum_en.eq(1), self.sum_addr.eq(slot), self.sum_data.eq(total)]
                    m.d.sync += [acc.eq(0), slot.eq(slot + 1), self.rows_done.eq(self.rows_done + 1)]
                with m.Else():
                    m.d.sync += acc.eq(total)
        return m
