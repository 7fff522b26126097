"""cocotb testbench of the generated accelerator, shaped like cocotb's matrix_multiplier example:
stream sources, an output monitor, the golden model as reference, a scoreboard that checks each
output vector as it leaves (the shared transaction layer: ``doping.sim.transactions``,
``doping.sim.streams_cocotb``).

The job (``doping.sim.job.MatvecJob``: packs, vectors, seed, back-pressure, result file) comes
from the runner; results go to the job's ``out`` file.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import SimTimeoutError, with_timeout

from doping import golden
from doping.arch import UNITS, x_beats
from doping.hw.loader import load_words, register_words
from doping.pack import read_pack
from doping.sim.job import MatvecJob, MatvecResult, read_job, write_result
from doping.sim.streams_cocotb import StreamSink, StreamSource, reset
from doping.sim.transactions import Scoreboard, VectorCollector, load_payloads, pauses


class OutputMonitor:
    """Takes the y stream through a ``StreamSink`` (its pauses set by the caller), reassembles
    vectors (``VectorCollector``: m outputs, W a beat, ``last`` checked), hands each to the
    scoreboard as it completes, and notes per vector its latency (the design's ``vector_cycles``)
    and the monitor cycle of its last beat; counts the cycles each unit was busy (``status`` bits)."""

    def __init__(self, dut, sink: StreamSink, scoreboard: Scoreboard, m: int, w: int):
        self.dut, self.sink = dut, sink
        self.collector = VectorCollector(m, w, on_vector=self._vector)
        self.scoreboard = scoreboard
        self.cycles, self.ends = [], []  # per vector: latency, cycle of its last beat
        self.busy = {u: 0 for u in UNITS} | {"cycles": 0}

    def _probe(self):
        status = int(self.dut.status.value)
        for bit, unit in enumerate(UNITS):
            self.busy[unit] += (status >> bit) & 1
        self.busy["cycles"] += 1

    def _vector(self, values):
        self.scoreboard.check(values)
        self.cycles.append(int(self.dut.vector_cycles.value))
        self.ends.append(self.busy["cycles"])

    async def collect(self, vectors: int):
        await self.sink.run(self.collector.take, lambda: self.collector.vectors >= vectors, self._probe)


IDLE_INPUTS = ("load__valid", "x__valid", "y__ready")


def watchdog_cycles(layer, cfg, vectors: int, job: MatvecJob) -> int:
    """A bound no correct run exceeds: the cycle model's cycles per vector plus every load word,
    stretched by the idle and stall probabilities (each < 1), times 4, plus slack."""
    from doping.estimate.cycles import schedule

    words = len(load_words(layer, cfg))
    slow = max(job.x_gap, job.y_stall, job.load_gap)
    return int(4 * (words + vectors * (schedule(layer, cfg).cycles + layer.m)) / (1.0 - slow)) + 10_000


async def run_vectors(dut, cfg, layer, xs, rng, job, scoreboard: Scoreboard, words=None):
    """Load ``layer`` (its ``words``, or all of its load words), stream ``xs``, check each output
    vector on ``scoreboard`` as it leaves (its expectations queued by the caller); return (outputs,
    latencies, busy cycles, the monitor cycle of each vector's last beat). Fails the test when the
    run outlasts ``watchdog_cycles`` (a hang), instead of simulating forever."""
    limit = watchdog_cycles(layer, cfg, len(xs), job)
    load, x, y = StreamSource(dut, "load"), StreamSource(dut, "x"), StreamSink(dut, "y")
    load.set_pause_generator(pauses(rng, job.load_gap))
    x.set_pause_generator(pauses(rng, job.x_gap))
    y.set_pause_generator(pauses(rng, job.y_stall))
    mon = OutputMonitor(dut, y, scoreboard, layer.m, cfg.stream_bytes)

    async def work():
        await load.send(load_payloads(words or load_words(layer, cfg)))
        task = cocotb.start_soon(mon.collect(len(xs)))
        await x.send([b for v in np.asarray(xs) for b in x_beats(v, cfg.stream_bytes)])
        await task

    try:
        await with_timeout(work(), limit * 10, "ns")  # 10 ns clock
    except SimTimeoutError:
        raise AssertionError(f"watchdog: no result after {limit} cycles (the cycle model allows far fewer); "
                             f"{len(mon.collector.values)} of {len(xs) * layer.m} outputs seen") from None
    assert mon.collector.bad_last == 0, f"{mon.collector.bad_last} y beats with a wrong last flag"
    return mon.collector.array(), mon.cycles, mon.busy, mon.ends


@cocotb.test()
async def regression(dut):
    job = read_job(MatvecJob)
    cfg = job.accel
    rng = np.random.default_rng(job.seed)
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut, IDLE_INPUTS)
    board = Scoreboard()
    latency, busy_cycles, runs, total, intervals = [], [], [], 0, []
    for k, pack_path in enumerate(job.packs):
        pack = read_pack(pack_path)
        # one named layer, or every layer in order; a chained layer (LMF's U after V) takes the
        # outputs the design gave for its input layer
        layers = [pack.layer(job.layer)] if job.layer else pack.layers
        outputs = {}
        resident = job.resident and len(layers) > 1
        if resident:  # every layer into its own region once; each run below switches by registers
            load = StreamSource(dut, "load")
            load.set_pause_generator(pauses(rng, job.load_gap))
            await load.send(load_payloads(w for r, layer in enumerate(layers) for w in load_words(layer, cfg, r)))
        for region, layer in enumerate(layers):
            if layer.input is not None and layer.input in outputs:
                xs = outputs[layer.input].astype(np.int8)
            else:
                xs = rng.integers(-128, 128, size=(job.vectors, layer.n)).astype(np.int8)
            if job.reset_mid_vector and k == 0 and layer is layers[0]:
                # abandon a vector half way, reset, then everything must work after a reload
                await StreamSource(dut, "load").send(load_payloads(load_words(layer, cfg)))
                await StreamSource(dut, "x").send(x_beats(xs[0, : layer.n // 2], cfg.stream_bytes))
                await reset(dut, IDLE_INPUTS)
            where = str(pack_path) if len(layers) == 1 else f"{pack_path}:{layer.name}"
            board.expect(golden.forward(layer, xs), lambda i: {"pack": where, "vector": i})
            bad_before = board.mismatches
            words = register_words(layer, cfg, region) if resident else None
            got, cycles, busy, ends = await run_vectors(dut, cfg, layer, xs, rng, job, board, words)
            outputs[layer.name] = got
            latency += cycles
            total += busy["cycles"]
            intervals.append((ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None)
            busy_cycles.append(busy)
            runs.append({"pack": str(pack_path), "layer": layer.name, "vectors": len(xs),
                         "mismatches": board.mismatches - bad_before})
    assert board.pending == 0, f"{board.pending} expected output vectors never came"
    result = MatvecResult(vectors=board.checked, mismatches=board.mismatches, latency_cycles=latency,
                          total_cycles=total, interval_cycles=intervals, busy_cycles=busy_cycles, packs=runs,
                          mismatch_examples=board.examples)
    write_result(result, job.out)
    assert board.mismatches == 0, f"{board.mismatches} of {board.checked} vectors mismatched: {result.first_mismatch}"
