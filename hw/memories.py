"""Memory instantiation and addressing shared by the units: banks of ``amaranth.lib.memory``
with one write and one read port each, the resident-layer region of a weight-memory address, and
the register file as a ``StructLayout`` (geometry and register list: ``doping.arch``)."""

from __future__ import annotations

from amaranth.hdl import Cat, unsigned
from amaranth.lib import data, memory

from doping.arch import REGS
from doping.config import AccelConfig, bits_for

#: The mat-vec register file (``doping.arch.REGS``), 32 bits each, written from the load stream.
Registers = data.StructLayout({name: unsigned(32) for name in REGS})


def banks(m, name: str, count: int, depth: int, shape, transparent: bool = False) -> list[tuple]:
    """``count`` memories ``name0`` .. as submodules of ``m``: [(write port, read port)] (a
    transparent read port sees the same cycle's write)."""
    out = []
    for b in range(count):
        mem = memory.Memory(shape=shape, depth=depth, init=[])
        m.submodules[f"{name}{b}"] = mem
        wp = mem.write_port()
        out.append((wp, mem.read_port(transparent_for=(wp,) if transparent else ())))
    return out


def read_signature(cfg: AccelConfig, key: str, shape) -> memory.ReadPort.Signature:
    """A read port of one bank of memory ``key``, for a unit's ``In(...)`` member."""
    return memory.ReadPort.Signature(addr_width=cfg.memories[key].addr_bits, shape=shape)


def write_signature(cfg: AccelConfig, key: str, shape) -> memory.WritePort.Signature:
    """A write port of one bank of memory ``key``, for a unit's ``In(...)`` member."""
    return memory.WritePort.Signature(addr_width=cfg.memories[key].addr_bits, shape=shape)


def region_address(cfg: AccelConfig, key: str, offset, region):
    """Address of ``offset`` within resident layer ``region``'s part of weight memory ``key``
    (the region index is the address's high part)."""
    low = offset[:bits_for(cfg.memories[key].layer_depth)]
    return low if cfg.resident_layers == 1 else Cat(low, region[:bits_for(cfg.resident_layers)])
