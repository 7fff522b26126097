"""Third-party bench of the AXI4-Stream IP (``doping.hw.axi``, top ``doping_accel_axi``):
cocotbext-axi's ``AxiStreamSource`` drives the load and x streams, its ``AxiStreamSink`` takes y
(tkeep removes a final beat's padding), each with a random pause generator; every output vector is
checked against the golden model as it arrives (per-transaction scoreboard). Its ``AxiLiteMaster``
reads the ID and config registers, writes every other pack's layer registers over AXI4-Lite (its
weights still on the load stream) and reads them back, checks SLVERR on unmapped and read-only
offsets, and the performance counters at the end. The job (a
``doping.sim.job.AxiJob``) comes from the runner; the result goes to the job's ``out`` file."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiResp, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

from doping import golden
from doping.arch import LOAD_WORD_BYTES, SEL_REG, UNITS, pack_load_word
from doping.csr import BY_NAME, CSR_ID, CsrClient, field_value
from doping.hw.loader import load_words, register_values
from doping.pack import read_pack
from doping.sim.job import AxiJob, AxiResult, read_job, write_result
from doping.sim.streams_cocotb import reset as reset_dut
from doping.sim.tb_accel import watchdog_cycles
from doping.sim.transactions import Scoreboard, load_payloads, pauses


def load_frame(layer, cfg, registers: bool = True) -> AxiStreamFrame:
    """The layer's load words as one frame, ``LOAD_WORD_BYTES`` little-endian bytes a word
    (without its register words unless ``registers``)."""
    words = [w for w in load_words(layer, cfg) if registers or w[0] != SEL_REG]
    return AxiStreamFrame(b"".join(p.to_bytes(LOAD_WORD_BYTES, "little") for p in load_payloads(words)))


async def registers_over_axil(csr: CsrClient, layer, cfg):
    """The layer's registers written over AXI4-Lite, and read back."""
    values = register_values(layer, cfg)
    for name, v in values.items():
        await csr.write(f"LAYER_{name.upper()}", v)
    back = {name: await csr.read(f"LAYER_{name.upper()}") for name in values}
    assert back == values, f"layer registers read back {back}, written {values}"


class StreamRules:
    """AXI4-Stream rules on the IP's output ``m_axis_y``, checked every cycle (sampled at the rising
    edge): once ``tvalid`` is high it stays high, with ``tdata``/``tlast``/``tkeep`` unchanged,
    until the transfer (``tvalid & tready``); counts the stalled cycles checked and violations."""

    def __init__(self, dut, prefix: str = "m_axis_y"):
        self.sig = {k: getattr(dut, f"{prefix}_{k}") for k in ("tvalid", "tready", "tdata", "tlast", "tkeep")}
        self.clk, self.stalled, self.violations = dut.aclk, 0, []

    async def watch(self):
        held = None  # (tdata, tlast, tkeep) of a beat offered and not yet taken
        while True:
            await RisingEdge(self.clk)
            v = {k: int(s.value) for k, s in self.sig.items()}
            beat = (v["tdata"], v["tlast"], v["tkeep"])
            if held is not None:
                self.stalled += 1
                if not v["tvalid"] or beat != held:
                    self.violations.append({"time_ns": get_sim_time(unit="ns"), "held": held, "now": beat,
                                            "tvalid": v["tvalid"]})
            held = beat if v["tvalid"] and not v["tready"] else None


async def reset(dut):
    await reset_dut(dut, cycles=3, signal="aresetn", active=0, clk=dut.aclk, settle=1)


@cocotb.test()
async def axi_regression(dut):
    job = read_job(AxiJob)
    cfg = job.accel
    rng = np.random.default_rng(job.seed)
    Clock(dut.aclk, 10, unit="ns").start()
    dut.aresetn.value = 0
    kw = dict(reset=dut.aresetn, reset_active_level=False)
    load = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.aclk, **kw)
    x = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_x"), dut.aclk, **kw)
    y = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_y"), dut.aclk, **kw)
    x.set_pause_generator(pauses(rng, job.x_gap))
    y.set_pause_generator(pauses(rng, job.y_stall))
    load.set_pause_generator(pauses(rng, job.load_gap))
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, **kw)
    csr = CsrClient(axil)
    await reset(dut)
    rules = StreamRules(dut)
    cocotb.start_soon(rules.watch())
    assert await csr.read("ID") == CSR_ID
    assert await csr.read("CONFIG") == field_value("CONFIG", rows=cfg.rows, cols=cfg.cols, lanes=cfg.lanes,
                                                   stream_bytes=cfg.stream_bytes, log2_batch=cfg.batch.bit_length() - 1)
    for bad in (0xFFC, BY_NAME["ID"].offset):  # unmapped; read-only
        assert (await axil.write(bad, b"\x01\x00\x00\x00")).resp == AxiResp.SLVERR
    assert (await axil.read(0xFFC, 4)).resp == AxiResp.SLVERR
    board, cycles = Scoreboard(), 0
    for k, pack_path in enumerate(job.packs):
        layer = read_pack(pack_path).layers[0]
        xs = rng.integers(-128, 128, size=(job.vectors, layer.n)).astype(np.int8)
        if job.reset_mid_vector and k == 0:
            # half a vector (its tlast early: err_x_tlast), then reset: everything works after a reload
            await load.send(load_frame(layer, cfg))
            await load.wait()
            await x.send(AxiStreamFrame(xs[0, : layer.n // 2].tobytes()))
            await x.wait()
            await ClockCycles(dut.aclk, 5)
            await reset(dut)
            assert int(dut.err_x_tlast.value) == 0, "aresetn did not clear err_x_tlast"
        board.expect(golden.forward(layer, xs), lambda i: {"pack": str(pack_path), "vector": i})
        span = {}

        async def run():
            over_axil = k % 2 == 1  # every other pack: its registers over AXI4-Lite, its weights on the stream
            await load.send(load_frame(layer, cfg, registers=not over_axil))
            await load.wait()  # every load word taken before the first x beat is offered
            if over_axil:
                await registers_over_axil(csr, layer, cfg)
            span["x"] = get_sim_time(unit="ns")
            for v in xs:
                await x.send(AxiStreamFrame(v.tobytes()))
            for _ in range(len(xs)):  # each frame checked as it arrives (per-transaction scoreboard)
                frame = await y.recv()
                got = np.frombuffer(bytes(frame.tdata), dtype=np.int8)
                assert len(got) == layer.m, f"a y frame of {len(got)} bytes (tkeep), m = {layer.m}"
                board.check(got)

        limit = watchdog_cycles(layer, cfg, len(xs), job)
        try:
            await with_timeout(run(), limit * 10, "ns")
        except SimTimeoutError:
            raise AssertionError(f"watchdog: no result after {limit} cycles") from None
        cycles += int((get_sim_time(unit="ns") - span["x"]) // 10)
    err = int(dut.err_x_tlast.value)
    # counters: every vector since the reset counted; each unit busy part of the time; cleared on request
    vectors, mismatches = board.checked, board.mismatches
    assert await csr.read("VECTORS") == vectors
    total = await csr.read("CYCLES")
    busy = {u: await csr.read(f"BUSY_{u}") for u in UNITS}
    assert all(0 < b < total for b in busy.values()), (busy, total)
    assert 0 < await csr.read("LAST_LATENCY") < total
    await csr.write("CONTROL", field_value("CONTROL", clear_counters=1))
    assert await csr.read("VECTORS") == 0 and await csr.read("CYCLES") < 100
    # a load word naming no memory raises err_load_word; CONTROL clears it
    flag = field_value("STATUS", err_load_word=1)
    assert not await csr.read("STATUS") & flag
    await load.send(AxiStreamFrame(pack_load_word(15, 0, 0).to_bytes(LOAD_WORD_BYTES, "little")))
    await load.wait()
    await ClockCycles(dut.aclk, 4)
    assert await csr.read("STATUS") & flag, "a bad load word did not set err_load_word"
    await csr.write("CONTROL", field_value("CONTROL", clear_errors=1))
    assert not await csr.read("STATUS") & flag
    write_result(AxiResult(vectors=vectors, mismatches=mismatches, mismatch_examples=board.examples, cycles=cycles,
                           err_x_tlast=err, stalled_beats_checked=rules.stalled,
                           stream_rule_violations=rules.violations[:5]), job.out)
    assert not rules.violations, f"m_axis_y broke the AXI4-Stream rules: {rules.violations[:2]}"
    assert mismatches == 0, f"{mismatches} of {vectors} vectors mismatched: {board.examples[:1]}"
    assert err == 0, "err_x_tlast set: an x tlast did not match its vector's end"
