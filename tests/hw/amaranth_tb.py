"""Amaranth-simulator harness for the accelerator top on the shared transaction layer
(``doping.sim.transactions``, ``doping.sim.streams_amaranth``): load a layer, stream vectors (W =
``stream_bytes`` elements a beat) with optional random gaps on x and random stalls on y, collect
outputs and per-vector cycle counts, and check ``last`` on every y beat."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.arch import x_beats
from doping.hw.loader import load_words
from doping.hw.top import Accelerator
from doping.sim.streams_amaranth import StreamSink, StreamSource
from doping.sim.transactions import VectorCollector, load_payloads, pauses


def run_phases(cfg, phases, seed=0, x_gap=0.0, y_stall=0.0, max_cycles=500_000):
    """``phases``: (load words, m, int8 inputs (batch, n)) run one after another in one
    simulation (memories keep what earlier phases loaded). Returns per phase (y int8 (batch, m),
    vector_cycles list) and the cycle each phase's last y was taken. A run that has not finished
    after ``max_cycles`` fails (a hang is a test failure, not a stuck test)."""
    dut = Accelerator(cfg)
    W = cfg.stream_bytes
    rng = np.random.default_rng(seed)
    load, x, y = StreamSource(dut.load), StreamSource(dut.x), StreamSink(dut.y)
    x.set_pause_generator(pauses(rng, x_gap))
    y.set_pause_generator(pauses(rng, y_stall))
    collectors = [VectorCollector(m, W) for _, m, _ in phases]
    cycles = [[] for _ in phases]
    ends = [None] * len(phases)

    async def loader_then_driver(ctx):
        for p, (words, _, xs) in enumerate(phases):
            await load.send(ctx, load_payloads(words))
            await x.send(ctx, [b for v in xs for b in x_beats(v, W)])
            while ends[p] is None:  # the next phase's words go in once this phase's outputs are out
                await ctx.tick()

    async def sink(ctx):
        for p, (_, m, xs) in enumerate(phases):
            col = collectors[p]

            def beat(payload, col=col, p=p):
                if col.take(payload):
                    cycles[p].append(ctx.get(dut.vector_cycles))

            await y.run(ctx, beat, lambda col=col, n=len(xs): col.vectors >= n, max_cycles - y.cycles)
            if col.vectors < len(xs):
                return
            assert col.bad_last == 0, f"{col.bad_last} y beats with a wrong last flag"
            ends[p] = y.cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(loader_then_driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert ends[-1] is not None, f"no result after {max_cycles} cycles: phases finished at {ends}"
    return [(c.array().astype(np.int8), cyc) for c, cyc in zip(collectors, cycles)], ends


def run_top(cfg, layer, xs, seed=0, x_gap=0.0, y_stall=0.0):
    """Returns (y int8 (batch, m), vector_cycles list)."""
    (out,), _ = run_phases(cfg, [(load_words(layer, cfg), layer.m, xs)], seed, x_gap, y_stall)
    return out
