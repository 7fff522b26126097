"""The LSTM top in amaranth.sim (hw/cell.py, hw/lstm.py): the cell unit against the golden cell
over every int8 code, whole sequences bit-exact against the golden LSTM, and cycles per token
equal to the estimator's model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate.lstm import lstm_per_token
from doping.golden import Requant
from doping.golden.fixedpoint import requantise
from doping.golden.lstm import LSTMLayerQuant, cell
from doping.hw.cell import LSTMCell
from doping.hw.loader import lstm_load_words
from doping.synth import synth_layer, synth_lstm
from doping.sim.tb_lstm import golden_lanes
from tests.hw.lstm_tb import run_lstm

SMALL = AccelConfig(rows=2, cols=2, lanes=2, max_m=64, max_n=24, max_factor=64, max_intermediate=64, max_nnz=256,
                    resident_layers=2, lstm_cell=1)


def _cell_layer(H, sigmoid, tanh, tanh_c, cell_rq):
    gate = synth_layer((4 * H, H + 1), 2, seed=0)
    return LSTMLayerQuant(gates=[gate], hidden=H, bias=np.zeros(4 * H, np.int32), pre_rq=Requant(1, 0),
                          cell_rq=cell_rq, h_rq=Requant.from_real(2.0 ** -30 / 0.011),
                          out_rq=Requant.from_real(2.0 ** -30 / 0.017), sigmoid=sigmoid, tanh=tanh, tanh_c=tanh_c)


def _run_cell(cfg, steps, seed):
    """Steps of (LSTMLayerQuant with the tables to load, p (4H,), fresh) through the cell unit alone
    (tables rewritten before each step, random stalls on h); returns per step (own, out) by unit."""
    dut = LSTMCell(cfg)
    rng, W = np.random.default_rng(seed), cfg.stream_bytes
    got = [dict() for _ in steps]

    async def driver(ctx):
        for k, (layer, p, fresh) in enumerate(steps):
            while any(len(g) < steps[i][0].hidden for i, g in enumerate(got[:k])):
                await ctx.tick()  # the previous step has left the pipeline
            for which, table in ((0, np.concatenate([layer.sigmoid, layer.tanh])), (1, layer.tanh_c)):
                for a, v in enumerate(table.tolist()):
                    ctx.set(dut.table, {"en": 1, "which": which, "addr": a, "data": v})
                    await ctx.tick()
            ctx.set(dut.table.en, 0)
            for name, rq in (("cell", layer.cell_rq), ("h", layer.h_rq), ("out", layer.out_rq)):
                ctx.set(getattr(dut, f"{name}_mult"), rq.multiplier)
                ctx.set(getattr(dut, f"{name}_shift"), rq.shift)
            ctx.set(dut.hidden, layer.hidden)
            ctx.set(dut.fresh, fresh)
            for i in range(0, len(p), W):
                ctx.set(dut.p.payload, {"data": p[i:i + W].tolist(), "last": 0})
                ctx.set(dut.p.valid, 1)
                await ctx.tick().until(dut.p.ready)
            ctx.set(dut.p.valid, 0)

    async def sink(ctx):
        for k, (layer, _, _) in enumerate(steps):
            for _ in range(100_000):
                if len(got[k]) == layer.hidden:
                    break
                ready = int(rng.random() > 0.3)
                ctx.set(dut.h.ready, ready)
                _, _, valid, res = await ctx.tick().sample(dut.h.valid, dut.h.payload)
                if valid and ready:
                    for t in range(W):
                        got[k][res.index * W + t] = (res.own[t], res.out[t])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(sink)
    sim.run()
    return [np.array([g[j] for j in range(len(g))], dtype=np.int64) for g in got]


@pytest.mark.parametrize("w", [1, 4])
def test_cell_unit_matches_golden_over_every_int8_code(w):
    """H = 256: every block (i, f, g, o) holds every int8 code once, in random order. Step 1
    (fresh) uses ramp tables, so that the cell state's int8 code takes every value through
    tanh_c; step 2 (the state carried) random tables of the stored ranges. W = 4: four rows a beat,
    each lane its own tables, buffers and state."""
    H, rng = 256, np.random.default_rng(7)
    cfg = dataclasses.replace(SMALL, max_m=4 * H, resident_layers=1, stream_bytes=w, lanes=max(w, 2))
    ramp = (np.arange(256) - 128) * 256
    t1 = _cell_layer(H, np.full(256, 32767, np.int16), np.clip(ramp, -32767, 32767).astype(np.int16),
                     rng.integers(-32767, 32768, 256).astype(np.int16), Requant(1 << 14, 22))
    t2 = _cell_layer(H, rng.integers(0, 32768, 256).astype(np.int16), rng.integers(-32767, 32768, 256).astype(np.int16),
                     rng.integers(-32767, 32768, 256).astype(np.int16), Requant.from_real(127 / 2 ** 16))
    ps = [np.concatenate([rng.permutation(256) - 128 for _ in range(4)]) for _ in range(2)]
    got = _run_cell(cfg, [(t1, ps[0], 1), (t2, ps[1], 0)], seed=3)
    c = np.zeros((1, H), np.int64)
    for layer, p, out in ((t1, ps[0], got[0]), (t2, ps[1], got[1])):
        h, h_out, c = cell(layer, p[None, :], c)
        assert np.array_equal(out[:, 0], h[0]) and np.array_equal(out[:, 1], h_out[0])
        if layer is t1:  # every code of the cell state reached tanh_c
            assert len(np.unique(requantise(c, layer.cell_rq, 8))) == 256


def _lanes(rng, inputs, lanes, steps):
    """Per lane, random int8 sequences of random lengths adding up to ``steps``."""
    out = []
    for _ in range(lanes):
        seqs, left = [], steps
        while left:
            t = int(min(left, rng.integers(1, 5)))
            seqs.append(rng.integers(-128, 128, (t, inputs)).astype(np.int8))
            left -= t
        out.append(seqs)
    return out


@pytest.mark.parametrize("inputs,hidden,layers,batch,w,seed", [(6, 4, 2, 1, 1, 1), (5, 3, 1, 1, 1, 2), (4, 5, 2, 3, 1, 3),
                                                             (6, 4, 2, 1, 2, 4), (8, 4, 2, 2, 2, 5)])
def test_lstm_top_sequences_bit_exact_and_cycles_equal_model(inputs, hidden, layers, batch, w, seed):
    """Sequences of random lengths (state reset between them; with batch > 1, every lane its own)
    through a random doped LSTM: the last layer's h equals the golden LSTM's, and in a clean run
    every step after the first takes exactly the model's cycles. W = 2: [x; h], gate rows, tokens
    and h two elements a beat."""
    g, cells = synth_lstm(inputs, hidden, layers, 3, seed=seed)
    cfg = dataclasses.replace(SMALL, lstm_batch=batch, stream_bytes=w, lanes=2 * w)
    rng = np.random.default_rng(seed)
    lanes = _lanes(rng, inputs, batch, 6)
    out, ends = run_lstm(cfg, cells, lanes)
    assert np.array_equal(out, golden_lanes(cells, lanes))
    want = lstm_per_token(cells, cfg).cycles_per_step
    assert set(np.diff(ends).tolist()) == {want}


def test_lstm_top_back_pressure_and_gaps():
    g, cells = synth_lstm(7, 5, 2, 4, seed=11)
    cfg = dataclasses.replace(SMALL, lstm_batch=2)
    lanes = _lanes(np.random.default_rng(5), 7, 2, 7)
    out, _ = run_lstm(cfg, cells, lanes, seed=2, tok_gap=0.4, h_stall=0.5)
    assert np.array_equal(out, golden_lanes(cells, lanes))


def test_lstm_load_words_refuse_what_the_top_cannot_run():
    g, cells = synth_lstm(4, 3, 2, 3, seed=0)
    with pytest.raises(ValueError, match="lstm_cell = 0"):
        lstm_load_words(cells, dataclasses.replace(SMALL, lstm_cell=0))
    with pytest.raises(ValueError, match="resident_layers >= 2"):
        lstm_load_words(cells, dataclasses.replace(SMALL, resident_layers=1))
    chained = dataclasses.replace(cells[0], gates=[cells[0].gates[0], cells[0].gates[0]])
    with pytest.raises(ValueError, match="chain of 2"):
        lstm_load_words([chained], SMALL)
    wide = dataclasses.replace(SMALL, stream_bytes=2)  # hidden 3: a beat would straddle two gate blocks
    with pytest.raises(ValueError, match="hidden size 3 must be multiples of stream_bytes 2"):
        lstm_load_words(cells, wide)
    with pytest.raises(DopingError, match="hidden size 3 must be multiples of stream_bytes 2"):
        lstm_per_token(cells, wide)

