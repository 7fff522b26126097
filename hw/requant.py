"""Requantisation datapath of docs/numerics.md §3: ``saturate(shift_round(acc * M, k), bits)``."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed


def requant(m, acc, mult, shift, out_bits: int, name: str = "rq", _round: bool = True):
    """Combinational requantiser; returns a ``signed(out_bits)`` Signal driven in ``m.d.comb``.

    acc: signed accumulator (<= 32 bits); mult: unsigned 15-bit multiplier; shift: 0..47.
    ``_round=False`` truncates instead of rounding: a deliberate bug for mutation tests only.
    """
    prod = Signal(signed(64), name=f"{name}_prod")
    rnd = Signal(signed(64), name=f"{name}_rnd")
    shifted = Signal(signed(64), name=f"{name}_shifted")
    out = Signal(signed(out_bits), name=name)
    hi, lo = (1 << (out_bits - 1)) - 1, -(1 << (out_bits - 1))
    m.d.comb += [
        prod.eq(acc * Cat(mult, Const(0, 1)).as_signed()),
        rnd.eq(((Const(1, 64) << shift) >> 1) if _round else 0),
        shifted.eq((prod + rnd) >> shift),
        out.eq(Mux(shifted > hi, hi, Mux(shifted < lo, lo, shifted))),
    ]
    return out
