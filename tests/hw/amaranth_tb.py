"""Amaranth-simulator harness for the accelerator top: load a layer, stream vectors (W =
``stream_bytes`` elements a beat) with optional random gaps on x and random stalls on y, collect
outputs and per-vector cycle counts, and check ``last`` on every y beat."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.hw.loader import load_words
from doping.hw.top import Accelerator


def beats(x, w: int) -> list[list[int]]:
    """One vector as x-stream beats of ``w`` elements (the last padded with zeros)."""
    x = [int(v) for v in x] + [0] * (-len(x) % w)
    return [x[i:i + w] for i in range(0, len(x), w)]


def run_phases(cfg, phases, seed=0, x_gap=0.0, y_stall=0.0, max_cycles=500_000):
    """``phases``: (load words, m, int8 inputs (batch, n)) run one after another in one
    simulation (memories keep what earlier phases loaded). Returns per phase (y int8 (batch, m),
    vector_cycles list) and the cycle each phase's last y was taken. A run that has not finished
    after ``max_cycles`` fails (a hang is a test failure, not a stuck test)."""
    dut = Accelerator(cfg)
    W = cfg.stream_bytes
    rng = np.random.default_rng(seed)
    got = [[] for _ in phases]
    cycles = [[] for _ in phases]
    ends = [None] * len(phases)

    async def loader_then_driver(ctx):
        for p, (words, _, xs) in enumerate(phases):
            for sel, addr, data in words:
                ctx.set(dut.load.payload, {"sel": sel, "addr": addr, "data": data})
                ctx.set(dut.load.valid, 1)
                await ctx.tick().until(dut.load.ready)
            ctx.set(dut.load.valid, 0)
            for x in xs:
                for v in beats(x, W):
                    while rng.random() < x_gap:
                        ctx.set(dut.x.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.x.payload, v)
                    ctx.set(dut.x.valid, 1)
                    await ctx.tick().until(dut.x.ready)
                ctx.set(dut.x.valid, 0)
            while ends[p] is None:  # the next phase's words go in once this phase's outputs are out
                await ctx.tick()

    async def sink(ctx):
        now = 0
        for p, (_, m, xs) in enumerate(phases):
            while len(got[p]) < len(xs) * m:
                if now > max_cycles:
                    return
                ready = int(rng.random() >= y_stall)
                ctx.set(dut.y.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.y.valid, dut.y.payload)
                now += 1
                if valid and ready:
                    left = m - len(got[p]) % m  # outputs of this vector still to come
                    got[p] += [int(v) for v in payload.data][:min(W, left)]
                    assert payload.last == (left <= W), f"y.last {payload.last} with {left} outputs left"
                    if len(got[p]) % m == 0:
                        cycles[p].append(ctx.get(dut.vector_cycles))
            ends[p] = now

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(loader_then_driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert ends[-1] is not None, f"no result after {max_cycles} cycles: phases finished at {ends}"
    outs = [(np.array(g, dtype=np.int64).reshape(len(xs), m).astype(np.int8), c)
            for g, c, (_, m, xs) in zip(got, cycles, phases)]
    return outs, ends


def run_top(cfg, layer, xs, seed=0, x_gap=0.0, y_stall=0.0):
    """Returns (y int8 (batch, m), vector_cycles list)."""
    (out,), _ = run_phases(cfg, [(load_words(layer, cfg), layer.m, xs)], seed, x_gap, y_stall)
    return out
