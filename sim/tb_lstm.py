"""cocotb testbench of the generated LSTM top (hw/lstm.py): whole token sequences against the golden
integer LSTM (``doping.golden.lstm.run_sequence``), state reset between sequences.

The job (``doping.sim.job.LSTMJob``: pack, steps, seed, gaps, result file) comes from the runner;
results go to its ``out`` file. Each of the config's ``lstm_batch`` lanes
carries its own sequences of random lengths (1 .. max(2, steps // 3)) and random int8 embedding
elements; a step sends one token of every lane. A monitor takes h with random stalls and notes
the cycle each step's last element is taken; the scoreboard checks each token's h as it leaves
(the shared transaction layer: ``doping.sim.transactions``, ``doping.sim.streams_cocotb``).
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import SimTimeoutError, with_timeout

from doping.arch import h_elements, token_beats
from doping.golden.lstm import run_sequence
from doping.hw.loader import lstm_load_words
from doping.pack import read_pack
from doping.sim.job import LSTMJob, LSTMResult, read_job, write_result
from doping.sim.streams_cocotb import StreamSink, StreamSource, reset
from doping.sim.transactions import Scoreboard, load_payloads, pauses


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
    """Takes h (W elements a beat) through a ``StreamSink``; every ``per_step`` elements (one step: B lanes of H) it
    notes the cycle and hands each lane's H elements to the scoreboard as they leave."""

    def __init__(self, sink: StreamSink, scoreboard: Scoreboard, hidden: int, batch: int, w: int):
        self.sink, self.scoreboard, self.hidden, self.batch, self.w = sink, scoreboard, hidden, batch, w
        self.values, self.step_end, self.cycle = [], [], 0

    def _probe(self):
        self.cycle += 1

    def _beat(self, payload: int):
        self.values += h_elements(payload, self.w)
        if len(self.values) % self.hidden == 0:
            self.scoreboard.check(self.values[-self.hidden:])
        if len(self.values) % (self.hidden * self.batch) == 0:
            self.step_end.append(self.cycle)

    async def collect(self, steps: int):
        await self.sink.run(self._beat, lambda: len(self.values) >= steps * self.batch * self.hidden, self._probe)


IDLE_INPUTS = ("load__valid", "tok__valid", "h__ready")


@cocotb.test()
async def lstm_sequences(dut):
    job = read_job(LSTMJob)
    cfg = job.accel
    rng = np.random.default_rng(job.seed)
    cells = read_pack(job.pack).lstm
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut, IDLE_INPUTS)

    B, steps, H = cfg.lstm_batch, job.steps, cells[-1].hidden
    lanes = [sequences(rng, steps, cells[0].input_size) for _ in range(B)]
    xs, first = lanes_of(lanes)
    beats = [p for t in range(steps) for b in range(B) for p in token_beats(xs[b][t], first[b][t], cfg.stream_bytes)]
    board = Scoreboard()  # step by step, lane by lane
    board.expect(golden_lanes(cells, lanes), lambda i: {"token": i, "step": i // B, "lane": i % B})
    load, tok, h = StreamSource(dut, "load"), StreamSource(dut, "tok"), StreamSink(dut, "h")
    tok.set_pause_generator(pauses(rng, job.tok_gap))
    h.set_pause_generator(pauses(rng, job.h_stall))
    mon = HiddenMonitor(h, board, H, B, cfg.stream_bytes)
    words = lstm_load_words(cells, cfg)
    limit = job.watchdog_cycles

    async def work():
        await load.send(load_payloads(words))
        task = cocotb.start_soon(mon.collect(steps))
        await tok.send(beats)
        await task

    try:
        await with_timeout(work(), (limit + len(words)) * 10, "ns")
    except SimTimeoutError:
        raise AssertionError(f"watchdog: no result after {limit} cycles; {len(mon.values)} of "
                             f"{steps * B * H} h elements seen") from None
    assert board.pending == 0 and board.checked == steps * B
    write_result(LSTMResult(tokens=steps * B, steps=steps, sequences=sum(len(l) for l in lanes),
                            mismatches=board.mismatches, mismatch_examples=board.examples,
                            step_intervals=np.diff(mon.step_end).tolist()), job.out)
    assert not board.mismatches, f"{board.mismatches} of {steps * B} tokens mismatched: {board.examples[:1]}"
