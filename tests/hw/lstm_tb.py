"""Amaranth-simulator harness for the LSTM top (hw/lstm.py) on the shared transaction layer
(``doping.sim.transactions``, ``doping.sim.streams_amaranth``): load an LSTM stack, stream token
sequences with optional gaps on ``tok`` and stalls on ``h``, collect every token's h and the cycle
each step's last element was taken."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from doping.arch import h_elements, token_beats
from doping.hw.loader import lstm_load_words
from doping.hw.lstm import LSTMAccelerator
from doping.sim.streams_amaranth import StreamSink, StreamSource
from doping.sim.tb_lstm import lanes_of
from doping.sim.transactions import load_payloads, pauses


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
    load, tok, h = StreamSource(dut.load), StreamSource(dut.tok), StreamSink(dut.h)
    tok.set_pause_generator(pauses(rng, tok_gap))
    h.set_pause_generator(pauses(rng, h_stall))
    got, ends = [], []

    async def driver(ctx):
        await load.send(ctx, load_payloads(lstm_load_words(cells, cfg)))
        await tok.send(ctx, [p for t in range(steps) for b in range(B)
                             for p in token_beats(xs[b][t], first[b][t], cfg.stream_bytes)])

    def beat(payload):
        got.extend(h_elements(payload, cfg.stream_bytes))
        if len(got) % (B * H) == 0:
            ends.append(h.cycles)

    async def sink(ctx):
        await h.run(ctx, beat, lambda: len(got) >= steps * B * H, max_cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert len(got) == steps * B * H, f"{len(got)} of {steps * B * H} h elements after {max_cycles} cycles"
    return np.array(got, dtype=np.int64).reshape(steps * B, H).astype(np.int8), ends
