"""Amaranth-simulator harness for the accelerator top: load a layer, stream vectors with optional
random gaps on x and random stalls on y, collect outputs and per-vector cycle counts."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.hw.loader import load_words
from doping.hw.top import Accelerator


def run_top(cfg, layer, xs, seed=0, x_gap=0.0, y_stall=0.0):
    """Returns (y int8 (batch, m), vector_cycles list)."""
    words = load_words(layer, cfg)
    dut = Accelerator(cfg)
    rng = np.random.default_rng(seed)
    total = len(xs) * layer.m
    got, cycles = [], []

    async def loader_then_driver(ctx):
        for sel, addr, data in words:
            ctx.set(dut.load.payload, {"sel": sel, "addr": addr, "data": data})
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        for x in xs:
            for v in x:
                while rng.random() < x_gap:
                    ctx.set(dut.x.valid, 0)
                    await ctx.tick()
                ctx.set(dut.x.payload, int(v))
                ctx.set(dut.x.valid, 1)
                await ctx.tick().until(dut.x.ready)
            ctx.set(dut.x.valid, 0)

    async def sink(ctx):
        while len(got) < total:
            ready = int(rng.random() >= y_stall)
            ctx.set(dut.y.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.y.valid, dut.y.payload)
            if valid and ready:
                got.append(payload)
                if len(got) % layer.m == 0:
                    cycles.append(ctx.get(dut.vector_cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(loader_then_driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    return np.array(got, dtype=np.int64).reshape(len(xs), layer.m).astype(np.int8), cycles
