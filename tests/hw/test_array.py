"""The systolic array alone: P @ Q for random int8 matrices, both drain directions, back to back."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from doping.hw.array import SystolicArray


def run_array(R, C, jobs, drain_cols):
    dut = SystolicArray(R, C)
    results = []

    async def bench(ctx):
        for P, Q in jobs:
            K = P.shape[1]
            for k in range(K):
                for i in range(R):
                    ctx.set(dut.p[i], int(P[i, k]))
                for j in range(C):
                    ctx.set(dut.q[j], int(Q[k, j]))
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, k == 0)
                ctx.set(dut.last, k == K - 1)
                await ctx.tick()
            ctx.set(dut.valid, 0)
            for _ in range(R + C - 2):
                await ctx.tick()
            out = np.zeros((R, C), dtype=np.int64)
            ctx.set(dut.drain_cols, drain_cols)
            for d in range(R if drain_cols else C):
                if drain_cols:
                    out[R - 1 - d, :] = [ctx.get(dut.out_col[j]) for j in range(C)]
                else:
                    out[:, C - 1 - d] = [ctx.get(dut.out_row[i]) for i in range(R)]
                ctx.set(dut.drain, 1)
                await ctx.tick()
            ctx.set(dut.drain, 0)
            results.append(out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("R,C", [(1, 1), (2, 3), (4, 4)])
@pytest.mark.parametrize("drain_cols", [0, 1])
def test_array_gemm(R, C, drain_cols):
    rng = np.random.default_rng(R * 10 + C)
    jobs = []
    for K in (1, 2, 7):
        P = rng.integers(-128, 128, (R, K))
        Q = rng.integers(-128, 128, (K, C))
        jobs.append((P, Q))
    jobs.append((np.full((R, 5), -128), np.full((5, C), -128)))  # int8 extremes
    for (P, Q), out in zip(jobs, run_array(R, C, jobs, drain_cols)):
        np.testing.assert_array_equal(out, P @ Q)
