"""cocotb side of the transaction layer (``doping.sim.transactions``): a valid/ready source and
sink for the generated tops' ``<name>__valid/ready/payload`` ports, and the one reset.

Drive on the falling edge, sample on it too: every ready/valid of the design comes from registers,
so values seen at the falling edge are the ones the next rising edge acts on. Back-pressure is a
pause generator set from outside (``set_pause_generator``, as cocotbext-axi's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cocotb.triggers import FallingEdge

from doping.sim.transactions import Paced


class StreamSource(Paced):
    """Offers integer payloads on ``<name>__valid/payload``; a paused cycle offers nothing."""

    def __init__(self, dut, name: str, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.valid, self.ready, self.payload = (getattr(dut, f"{name}__{s}") for s in ("valid", "ready", "payload"))

    async def send(self, payloads: Iterable[int]) -> None:
        for p in payloads:
            while self.paused():
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


class StreamSink(Paced):
    """Takes beats from ``<name>__valid/payload``, ``ready`` low on paused cycles. ``run`` calls
    ``each_cycle()`` every cycle before the clock edge (a monitor's probe) and ``on_beat(payload)``
    for every transferred beat, until ``done()``; returns the cycles it ran."""

    def __init__(self, dut, name: str, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.valid, self.ready, self.payload = (getattr(dut, f"{name}__{s}") for s in ("valid", "ready", "payload"))
        self.cycles = 0  # every cycle this sink has run, over all its runs

    async def run(self, on_beat: Callable[[int], object], done: Callable[[], bool],
                  each_cycle: Callable[[], object] | None = None) -> int:
        cycles = 0
        while not done():
            ready = int(not self.paused())
            self.ready.value = ready
            valid = int(self.valid.value)
            payload = int(self.payload.value) if valid else 0
            if each_cycle is not None:
                each_cycle()
            await FallingEdge(self.clk)
            cycles += 1
            self.cycles += 1
            if ready and valid:
                on_beat(payload)
        self.ready.value = 0
        return cycles


async def reset(dut, idle: Iterable[str] = (), cycles: int = 2, signal: str = "rst", active: int = 1,
                clk=None, settle: int = 0) -> None:
    """The reset every bench uses: ``signal`` at ``active`` for ``cycles`` falling edges of ``clk``
    (default ``dut.clk``) with the named inputs (valids, readies) low, then released and
    ``settle`` more edges."""
    clk = clk if clk is not None else dut.clk
    getattr(dut, signal).value = active
    for s in idle:
        getattr(dut, s).value = 0
    for _ in range(cycles):
        await FallingEdge(clk)
    getattr(dut, signal).value = 1 - active
    for _ in range(settle):
        await FallingEdge(clk)
