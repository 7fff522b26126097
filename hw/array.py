"""Output-stationary systolic array of int8 x int8 -> int32 MAC PEs.

Row i of P enters at the left edge, skewed by i cycles, and moves right one PE per cycle; column
j of Q enters at the top, skewed by j, and moves down. PE (i, j) therefore sees P[i, k] and
Q[k, j] together at cycle k + i + j after they are presented, and accumulates them. The
``valid``/``first``/``last``/``bank`` flags travel with P. On ``last`` each PE copies its finished
sum into shadow register ``bank`` (two per PE, as Gemmini double-buffers its accumulators), from
which results drain while the PEs already accumulate the next tiles: along rows
(``drain_cols=0``, R results per cycle at the right edge, column C-1 first) or along columns
(``drain_cols=1``, C results per cycle at the bottom edge, row R-1 first); ``drain_bank`` says
which shadow bank shifts and drives the outputs.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class SystolicArray(wiring.Component):
    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        super().__init__({
            "p": In(data.ArrayLayout(signed(8), rows)),
            "q": In(data.ArrayLayout(signed(8), cols)),
            "valid": In(1), "first": In(1), "last": In(1), "bank": In(1),
            "drain": In(1), "drain_cols": In(1), "drain_bank": In(1),
            "out_row": Out(data.ArrayLayout(signed(32), rows)),
            "out_col": Out(data.ArrayLayout(signed(32), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols

        def delayed(sigs, name):
            regs = [Signal.like(s, name=f"{name}_{k}") for k, s in enumerate(sigs)]
            m.d.sync += [r.eq(s) for r, s in zip(regs, sigs)]
            return regs

        west = []  # west[i][j]: (a, valid, first, last, bank) entering PE (i, j)
        for i in range(R):
            sig = [self.p[i], self.valid, self.first, self.last, self.bank]
            for d in range(i):
                sig = delayed(sig, f"skew_r{i}_{d}")
            west.append([sig])
        north = [[None] * C for _ in range(R)]
        for j in range(C):
            sig = [self.q[j]]
            for d in range(j):
                sig = delayed(sig, f"skew_c{j}_{d}")
            north[0][j] = sig[0]
        acc = [[Signal(signed(32), name=f"acc_{i}_{j}") for j in range(C)] for i in range(R)]
        shadow = [[[Signal(signed(32), name=f"shadow{k}_{i}_{j}") for j in range(C)] for i in range(R)]
                  for k in (0, 1)]
        for i in range(R):
            for j in range(C):
                a, v, f, l, bk = west[i][j]
                b = north[i][j]
                if j + 1 < C:
                    west[i].append(delayed([a, v, f, l, bk], f"pe{i}_{j}_a"))
                if i + 1 < R:
                    north[i + 1][j] = delayed([b], f"pe{i}_{j}_b")[0]
                total = Signal(signed(32), name=f"sum_{i}_{j}")
                m.d.comb += total.eq(Mux(f, 0, acc[i][j]) + a * b)
                with m.If(v):
                    m.d.sync += acc[i][j].eq(total)
                for k, sh in enumerate(shadow):
                    left = sh[i][j - 1] if j > 0 else 0
                    up = sh[i - 1][j] if i > 0 else 0
                    with m.If(self.drain & (self.drain_bank == k)):
                        m.d.sync += sh[i][j].eq(Mux(self.drain_cols, up, left))
                    with m.Elif(v & l & (bk == k)):
                        m.d.sync += sh[i][j].eq(total)
        for i in range(R):
            m.d.comb += self.out_row[i].eq(Mux(self.drain_bank, shadow[1][i][C - 1], shadow[0][i][C - 1]))
        for j in range(C):
            m.d.comb += self.out_col[j].eq(Mux(self.drain_bank, shadow[1][R - 1][j], shadow[0][R - 1][j]))
        return m
