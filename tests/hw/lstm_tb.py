"""Amaranth-simulator harness for the LSTM top (hw/lstm.py): load an LSTM stack, stream token
sequences with optional gaps on ``tok`` and stalls on ``h``, collect every token's h and the cycle
each step's last element was taken."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.hw.loader import lstm_load_words
from doping.hw.lstm import LSTMAccelerator
from doping.sim.tb_lstm import lanes_of


def run_lstm(cfg, cells, sequences_per_lane, seed=0, tok_gap=0.0, h_stall=0.0, max_cycles=300_000):
    """``sequences_per_lane``: for each of the config's ``lstm_batch`` lanes, int8 sequences (T, I)
    whose lengths add up to the same number of steps; each sequence starts from zero state.
    Returns (h int8 (steps * B, H), cycle each step's last h was taken)."""
    dut = LSTMAccelerator(cfg)
    rng = np.random.default_rng(seed)
    B, H = cfg.lstm_batch, cells[-1].hidden
    xs, first = lanes_of(sequences_per_lane)
    steps = len(xs[0])
    assert len(xs) == B and all(len(x) == steps for x in xs)
    got, ends = [], []

    async def driver(ctx):
        for sel, addr, data in lstm_load_words(cells, cfg):
            ctx.set(dut.load.payload, {"sel": sel, "addr": addr, "data": data})
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        for t in range(steps):
            for b in range(B):
                for v in xs[b][t]:
                    while rng.random() < tok_gap:
                        ctx.set(dut.tok.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.tok.payload, {"data": int(v), "first": int(first[b][t])})
                    ctx.set(dut.tok.valid, 1)
                    await ctx.tick().until(dut.tok.ready)
        ctx.set(dut.tok.valid, 0)

    async def sink(ctx):
        now = 0
        while len(got) < steps * B * H and now <= max_cycles:
            ready = int(rng.random() >= h_stall)
            ctx.set(dut.h.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.h.valid, dut.h.payload)
            now += 1
            if valid and ready:
                got.append(payload)
                if len(got) % (B * H) == 0:
                    ends.append(now)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert len(got) == steps * B * H, f"{len(got)} of {steps * B * H} h elements after {max_cycles} cycles"
    return np.array(got, dtype=np.int64).reshape(steps * B, H).astype(np.int8), ends
