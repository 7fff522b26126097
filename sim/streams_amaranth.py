"""``amaranth.sim`` side of the transaction layer (``doping.sim.transactions``): a source and a
sink for an ``amaranth.lib.stream`` interface of the design, moving the same integer payloads
(the spec's formats, ``doping.arch``) as the cocotb adapters do, with pause generators set from
outside. Payloads are set and read as raw bits (``Value.cast`` of the payload view)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from amaranth.hdl import Value

from doping.sim.transactions import Paced


class StreamSource(Paced):
    """Offers integer payloads on a stream interface; a paused cycle offers nothing."""

    def __init__(self, stream):
        self.stream = stream

    async def send(self, ctx, payloads: Iterable[int]) -> None:
        s = self.stream
        for p in payloads:
            while self.paused():
                ctx.set(s.valid, 0)
                await ctx.tick()
            ctx.set(Value.cast(s.payload), int(p))
            ctx.set(s.valid, 1)
            await ctx.tick().until(s.ready)
        ctx.set(s.valid, 0)


class StreamSink(Paced):
    """Takes beats from a stream interface, ``ready`` low on paused cycles; ``run`` calls
    ``on_beat(payload)`` for every transferred beat until ``done()`` or ``limit`` cycles, and
    returns the cycles it ran."""

    def __init__(self, stream):
        self.stream = stream
        self.cycles = 0  # every cycle this sink has run, over all its runs

    async def run(self, ctx, on_beat: Callable[[int], object], done: Callable[[], bool], limit: int) -> int:
        s, cycles = self.stream, 0
        while not done() and cycles <= limit:
            ready = int(not self.paused())
            ctx.set(s.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(s.valid, Value.cast(s.payload))
            cycles += 1
            self.cycles += 1
            if valid and ready:
                on_beat(payload)
        ctx.set(s.ready, 0)
        return cycles
