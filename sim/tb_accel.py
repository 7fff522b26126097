"""cocotb testbench of the generated accelerator, shaped like cocotb's matrix_multiplier example:
stream drivers, an output monitor, the golden model as reference, a scoreboard.

The job (``doping.sim.job.MatvecJob``: packs, vectors, seed, back-pressure, result file) comes
from the runner; results go to the job's ``out`` file. Drive on the falling edge, sample on it
too: every ready/valid of the design comes from registers, so values seen at the falling edge are
the ones the next rising edge acts on.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, SimTimeoutError, with_timeout

from doping import golden
from doping.hw.loader import load_words, register_words
from doping.arch import UNITS, pack_load_word
from doping.pack import read_pack
from doping.sim.job import MatvecJob, MatvecResult, read_job, write_result


class StreamDriver:
    """Drives ``<name>__valid/payload`` from a list of integer payloads, with random idle cycles."""

    def __init__(self, dut, name, rng, gap=0.0):
        self.clk = dut.clk
        self.valid, self.ready, self.payload = (getattr(dut, f"{name}__{s}") for s in ("valid", "ready", "payload"))
        self.rng, self.gap = rng, gap

    async def send(self, payloads):
        for p in payloads:
            while self.gap and self.rng.random() < self.gap:
                self.valid.value = 0
                await FallingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = int(p)
            while True:
                ready = int(self.ready.value)  # this cycle's ready: the design's ready is registered
                await FallingEdge(self.clk)
                if ready:
                    break
        self.valid.value = 0


def x_beats(x, w: int) -> list[int]:
    """One int8 vector as x-stream payloads: ``w`` elements a beat, element k in bits 8k..8k+7
    (the last beat padded with zeros)."""
    x = [int(v) & 0xFF for v in x] + [0] * (-len(x) % w)
    return [sum(v << (8 * k) for k, v in enumerate(x[i:i + w])) for i in range(0, len(x), w)]


def y_beat(payload: int, w: int) -> tuple[list[int], int]:
    """A y-stream payload (``hw.streams.y_layout``): its ``w`` int8 outputs and ``last``."""
    vals = [(payload >> (8 * k)) & 0xFF for k in range(w)]
    return [v - 256 if v >= 128 else v for v in vals], (payload >> (8 * w)) & 1


class OutputMonitor:
    """Sets ``y__ready`` randomly, collects the int8 outputs of transferred beats (``w`` a beat;
    the padding past a vector's m dropped), per-vector latencies (the design's ``vector_cycles``)
    and the cycles each unit was busy (``status`` bits) over the run; counts beats whose ``last``
    is wrong."""

    def __init__(self, dut, rng, stall, m, w=1):
        self.dut, self.rng, self.stall, self.m, self.w = dut, rng, stall, m, w
        self.values, self.cycles, self.ends = [], [], []  # outputs; per vector: latency, cycle of its last beat
        self.bad_last = 0
        self.busy = {u: 0 for u in UNITS} | {"cycles": 0}

    async def collect(self, vectors):
        dut = self.dut
        while len(self.values) < vectors * self.m:
            ready = int(not (self.stall and self.rng.random() < self.stall))
            dut.y__ready.value = ready
            valid = int(dut.y__valid.value)
            payload = int(dut.y__payload.value) if valid else 0
            status = int(dut.status.value)
            for bit, unit in enumerate(UNITS):
                self.busy[unit] += (status >> bit) & 1
            self.busy["cycles"] += 1
            await FallingEdge(dut.clk)
            if ready and valid:
                left = self.m - len(self.values) % self.m
                vals, last = y_beat(payload, self.w)
                self.values += vals[:min(self.w, left)]
                self.bad_last += last != (left <= self.w)
                if len(self.values) % self.m == 0:
                    self.cycles.append(int(dut.vector_cycles.value))
                    self.ends.append(self.busy["cycles"])
        dut.y__ready.value = 0


def load_payloads(layer, cfg, words=None):
    return [pack_load_word(*w) for w in (words or load_words(layer, cfg))]


async def reset(dut, cycles=2):
    dut.rst.value = 1
    for s in ("load__valid", "x__valid", "y__ready"):
        getattr(dut, s).value = 0
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


def watchdog_cycles(layer, cfg, vectors: int, job: MatvecJob) -> int:
    """A bound no correct run exceeds: the cycle model's cycles per vector plus every load word,
    stretched by the idle and stall probabilities (each < 1), times 4, plus slack."""
    from doping.estimate.cycles import schedule

    words = len(load_words(layer, cfg))
    slow = max(job.x_gap, job.y_stall, job.load_gap)
    return int(4 * (words + vectors * (schedule(layer, cfg).cycles + layer.m)) / (1.0 - slow)) + 10_000


async def run_vectors(dut, cfg, layer, xs, rng, job, words=None):
    """Load ``layer`` (its ``words``, or all of its load words), stream ``xs``, return (outputs,
    latencies, busy cycles, the monitor cycle of each vector's last beat). Fails the test when the run outlasts ``watchdog_cycles`` (a hang),
    instead of simulating forever."""
    limit = watchdog_cycles(layer, cfg, len(xs), job)

    async def work():
        await StreamDriver(dut, "load", rng, job.load_gap).send(load_payloads(layer, cfg, words))
        x = StreamDriver(dut, "x", rng, job.x_gap)
        task = cocotb.start_soon(mon.collect(len(xs)))
        await x.send([b for v in np.asarray(xs) for b in x_beats(v, cfg.stream_bytes)])
        await task

    mon = OutputMonitor(dut, rng, job.y_stall, layer.m, cfg.stream_bytes)
    try:
        await with_timeout(work(), limit * 10, "ns")  # 10 ns clock
    except SimTimeoutError:
        raise AssertionError(f"watchdog: no result after {limit} cycles (the cycle model allows far fewer); "
                             f"{len(mon.values)} of {len(xs) * layer.m} outputs seen") from None
    assert mon.bad_last == 0, f"{mon.bad_last} y beats with a wrong last flag"
    return np.array(mon.values, dtype=np.int64).reshape(len(xs), layer.m), mon.cycles, mon.busy, mon.ends


MAX_EXAMPLES = 5


def scoreboard(got: np.ndarray, want: np.ndarray, pack: str) -> tuple[int, list[dict]]:
    """Per-transaction check of every output vector against the golden model: the number of
    mismatching vectors and the first few mismatching elements (vector, element, got, want)."""
    bad_rows = np.flatnonzero(np.any(got != want, axis=1))
    examples = []
    for i in bad_rows[:MAX_EXAMPLES]:
        j = int(np.flatnonzero(got[i] != want[i])[0])
        examples.append({"pack": pack, "vector": int(i), "element": j, "got": int(got[i, j]), "want": int(want[i, j]),
                         "elements_wrong": int(np.count_nonzero(got[i] != want[i]))})
    return len(bad_rows), examples


@cocotb.test()
async def regression(dut):
    job = read_job(MatvecJob)
    cfg = job.accel
    rng = np.random.default_rng(job.seed)
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    vectors, mismatches, latency, busy_cycles, runs, first_few = 0, 0, [], [], [], []
    total, intervals = 0, []
    for k, pack_path in enumerate(job.packs):
        pack = read_pack(pack_path)
        # one named layer, or every layer in order; a chained layer (LMF's U after V) takes the
        # outputs the design gave for its input layer
        layers = [pack.layer(job.layer)] if job.layer else pack.layers
        outputs = {}
        resident = job.resident and len(layers) > 1
        if resident:  # every layer into its own region once; each run below switches by registers
            preload = [w for r, layer in enumerate(layers) for w in load_words(layer, cfg, r)]
            await StreamDriver(dut, "load", rng, job.load_gap).send(load_payloads(None, cfg, preload))
        for region, layer in enumerate(layers):
            if layer.input is not None and layer.input in outputs:
                xs = outputs[layer.input].astype(np.int8)
            else:
                xs = rng.integers(-128, 128, size=(job.vectors, layer.n)).astype(np.int8)
            if job.reset_mid_vector and k == 0 and layer is layers[0]:
                # abandon a vector half way, reset, then everything must work after a reload
                await StreamDriver(dut, "load", rng).send(load_payloads(layer, cfg))
                await StreamDriver(dut, "x", rng).send(x_beats(xs[0, : layer.n // 2], cfg.stream_bytes))
                await reset(dut)
            words = register_words(layer, cfg, region) if resident else None
            got, cycles, busy, ends = await run_vectors(dut, cfg, layer, xs, rng, job, words)
            outputs[layer.name] = got
            where = str(pack_path) if len(layers) == 1 else f"{pack_path}:{layer.name}"
            bad, examples = scoreboard(got, golden.forward(layer, xs).astype(np.int64), where)
            vectors += len(xs)
            mismatches += bad
            latency += cycles
            total += busy["cycles"]
            intervals.append((ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None)
            busy_cycles.append(busy)
            runs.append({"pack": str(pack_path), "layer": layer.name, "vectors": len(xs), "mismatches": bad})
            first_few += examples[: MAX_EXAMPLES - len(first_few)]
    result = MatvecResult(vectors=vectors, mismatches=mismatches, latency_cycles=latency, total_cycles=total,
                          interval_cycles=intervals, busy_cycles=busy_cycles, packs=runs, mismatch_examples=first_few)
    write_result(result, job.out)
    assert mismatches == 0, f"{mismatches} of {vectors} vectors mismatched: {result.first_mismatch}"
