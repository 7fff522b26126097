"""Amaranth-simulator harness for the LSTM top (hw/lstm.py): load an LSTM stack, stream token
sequences with optional gaps on ``tok`` and stalls on ``h``, collect every token's h and the cycle
its last element was taken."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.hw.loader import lstm_load_words
from doping.hw.lstm import LSTMAccelerator


def run_lstm(cfg, cells, sequences, seed=0, tok_gap=0.0, h_stall=0.0, max_cycles=200_000):
    """``sequences``: int8 arrays (T, I), each starting from zero state. Returns (h int8 (tokens,
    H) of the last layer in order, cycle each token's last h was taken)."""
    dut = LSTMAccelerator(cfg)
    rng = np.random.default_rng(seed)
    H = cells[-1].hidden
    tokens = sum(len(s) for s in sequences)
    got, ends = [], []

    async def driver(ctx):
        for sel, addr, data in lstm_load_words(cells, cfg):
            ctx.set(dut.load.payload, {"sel": sel, "addr": addr, "data": data})
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        for seq in sequences:
            for t, x in enumerate(seq):
                for v in x:
                    while rng.random() < tok_gap:
                        ctx.set(dut.tok.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.tok.payload, {"data": int(v), "first": int(t == 0)})
                    ctx.set(dut.tok.valid, 1)
                    await ctx.tick().until(dut.tok.ready)
                ctx.set(dut.tok.valid, 0)

    async def sink(ctx):
        now = 0
        while len(got) < tokens * H and now <= max_cycles:
            ready = int(rng.random() >= h_stall)
            ctx.set(dut.h.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.h.valid, dut.h.payload)
            now += 1
            if valid and ready:
                got.append(payload)
                if len(got) % H == 0:
                    ends.append(now)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert len(got) == tokens * H, f"{len(got)} of {tokens * H} h elements after {max_cycles} cycles"
    return np.array(got, dtype=np.int64).reshape(tokens, H).astype(np.int8), ends
