"""Requantisation datapath of docs/numerics.md §3: ``saturate(shift_round(acc * M, k), bits)``,
as a two-stage pipeline (``doping.arch.REQUANT_STAGES``): the multiply, then round, shift and saturate."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed

from doping.arch import REQUANT_STAGES


def requant(m, acc, mult, shift, out_bits: int, en=1, name: str = "rq", _round: bool = True):
    """Pipelined requantiser; returns its ``signed(out_bits)`` output register.

    acc: signed accumulator (<= 32 bits); mult: unsigned 15-bit multiplier; shift: 0..47; both
    are load-time registers, stable while data flows. ``en``: the stages advance when high (a
    pipeline stall holds them). ``_round=False`` truncates instead of rounding: a deliberate bug
    for mutation tests only.
    """
    prod = Signal(signed(48), name=f"{name}_prod")
    rnd = Signal(signed(49), name=f"{name}_rnd")
    shifted = Signal(signed(49), name=f"{name}_shifted")
    out = Signal(signed(out_bits), name=name)
    hi, lo = (1 << (out_bits - 1)) - 1, -(1 << (out_bits - 1))
    with m.If(en):
        m.d.sync += prod.eq(acc * Cat(mult, Const(0, 1)).as_signed())
    m.d.comb += [
        rnd.eq(((Const(1, 49) << shift) >> 1) if _round else 0),
        shifted.eq((prod + rnd) >> shift),
    ]
    with m.If(en):
        m.d.sync += out.eq(Mux(shifted > hi, hi, Mux(shifted < lo, lo, shifted)))
    return out


def delayed(m, sig, name: str, en=None, stages: int = REQUANT_STAGES):
    """``sig`` ``stages`` registers later (advancing only while ``en``, if given): what travels
    beside a requantiser."""
    for s in range(stages):
        nxt = Signal.like(sig, name=f"{name}_d{s}")
        with m.If(1 if en is None else en):
            m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


def sat32(v):
    """``v`` saturated to the int32 range."""
    return Mux(v > (1 << 31) - 1, (1 << 31) - 1, Mux(v < -(1 << 31), -(1 << 31), v))
