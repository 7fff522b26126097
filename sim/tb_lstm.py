"""cocotb testbench of the generated LSTM top (hw/lstm.py): whole token sequences against the golden
integer LSTM (``doping.golden.lstm.run_sequence``), state reset between sequences.

The job (``doping.sim.job.LSTMJob``: pack, steps, seed, gaps, result file) comes from the runner;
results go to its ``out`` file. Each of the config's ``lstm_batch`` lanes
carries its own sequences of random lengths (1 .. max(2, steps // 3)) and random int8 embedding
elements; a step sends one token of every lane. A monitor takes h with random stalls and notes
the cycle each step's last element is taken; the scoreboard compares token by token.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, SimTimeoutError, with_timeout

from doping.golden.lstm import run_sequence
from doping.hw.loader import lstm_load_words
from doping.pack import read_pack
from doping.sim.job import LSTMJob, LSTMResult, read_job, write_result
from doping.sim.tb_accel import MAX_EXAMPLES, StreamDriver, load_payloads


def sequences(rng, tokens: int, inputs: int) -> list[np.ndarray]:
    """Random int8 sequences (T_i, inputs) of random lengths summing to ``tokens``."""
    out, left = [], tokens
    while left:
        t = int(min(left, rng.integers(1, max(2, tokens // 3) + 1)))
        out.append(rng.integers(-128, 128, (t, inputs)).astype(np.int8))
        left -= t
    return out


def lanes_of(sequences_per_lane):
    """Per lane, its sequences concatenated (steps, I) and the steps that start a sequence."""
    xs = [np.concatenate(seqs) for seqs in sequences_per_lane]
    first = [np.isin(np.arange(len(x)), np.cumsum([0] + [len(s) for s in seqs[:-1]]))
             for x, seqs in zip(xs, sequences_per_lane)]
    return xs, first


def golden_lanes(cells, sequences_per_lane):
    """The golden LSTM's last-layer h, step by step and lane by lane: (steps * B, H)."""
    per_lane = [np.concatenate([run_sequence(cells, s[:, None, :])[0][:, 0, :] for s in seqs])
                for seqs in sequences_per_lane]
    return np.stack(per_lane, axis=1).reshape(-1, cells[-1].hidden)


class HiddenMonitor:
    """Sets ``h__ready`` randomly; collects the h elements and the cycle each step's last one is
    taken (a step: ``per_step`` elements)."""

    def __init__(self, dut, rng, stall, per_step):
        self.dut, self.rng, self.stall, self.hidden = dut, rng, stall, per_step
        self.values, self.token_end = [], []

    async def collect(self, steps):
        dut, now = self.dut, 0
        while len(self.values) < steps * self.hidden:
            ready = int(not (self.stall and self.rng.random() < self.stall))
            dut.h__ready.value = ready
            valid = int(dut.h__valid.value)
            payload = dut.h__payload.value.to_signed() if valid else 0
            await FallingEdge(dut.clk)
            now += 1
            if ready and valid:
                self.values.append(payload)
                if len(self.values) % self.hidden == 0:
                    self.token_end.append(now)
        dut.h__ready.value = 0


@cocotb.test()
async def lstm_sequences(dut):
    job = read_job(LSTMJob)
    cfg = job.accel
    rng = np.random.default_rng(job.seed)
    cells = read_pack(job.pack).lstm
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for s in ("load__valid", "tok__valid", "h__ready"):
        getattr(dut, s).value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    B, steps, H = cfg.lstm_batch, job.steps, cells[-1].hidden
    lanes = [sequences(rng, steps, cells[0].input_size) for _ in range(B)]
    xs, first = lanes_of(lanes)
    beats = [(int(v) & 0xFF) | (int(first[b][t]) << 8) for t in range(steps) for b in range(B) for v in xs[b][t]]
    mon = HiddenMonitor(dut, rng, job.h_stall, B * H)
    words = lstm_load_words(cells, cfg)
    limit = job.watchdog_cycles

    async def work():
        await StreamDriver(dut, "load", rng).send(load_payloads(None, cfg, words))
        task = cocotb.start_soon(mon.collect(steps))
        await StreamDriver(dut, "tok", rng, job.tok_gap).send(beats)
        await task

    try:
        await with_timeout(work(), (limit + len(words)) * 10, "ns")
    except SimTimeoutError:
        raise AssertionError(f"watchdog: no result after {limit} cycles; {len(mon.values)} of "
                             f"{steps * B * H} h elements seen") from None
    got = np.array(mon.values, dtype=np.int64).reshape(steps * B, H)  # step by step, lane by lane
    want = golden_lanes(cells, lanes).astype(np.int64)
    bad = np.flatnonzero(np.any(got != want, axis=1))
    examples = [{"token": int(i), "step": int(i) // B, "lane": int(i) % B,
                 "element": int(np.flatnonzero(got[i] != want[i])[0]),
                 "got": got[i].tolist(), "want": want[i].tolist()} for i in bad[:MAX_EXAMPLES]]
    write_result(LSTMResult(tokens=steps * B, steps=steps, sequences=sum(len(l) for l in lanes), mismatches=len(bad),
                            mismatch_examples=examples, step_intervals=np.diff(mon.token_end).tolist()), job.out)
    assert not len(bad), f"{len(bad)} of {steps * B} tokens mismatched: {examples[:1]}"
