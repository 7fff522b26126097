"""Addressing of memories striped over C banks (act_q holding X, kbuf holding K): flat index f
lives in bank f mod C at word f div C, and is carried as the pair (f div C, f mod C) so that no
divider is needed while a unit walks through it."""

from __future__ import annotations

from amaranth.hdl import Const, Mux, unsigned
from amaranth.lib import data


def divmod_add(q, r, dq, dr, c: int):
    """(q, r) + (dq, dr), both as (div c, mod c); dr <= c."""
    s = r + dr
    carry = s >= c
    return q + dq + carry, Mux(carry, s - c, s)


def divmod_sub(q, r, dq, dr, c: int):
    """(q, r) - (dq, dr), both as (div c, mod c); dr < c."""
    borrow = r < dr
    return q - dq - borrow, Mux(borrow, r + c - dr, r - dr)


def divmod_by(v, c: int):
    """(v div c, v mod c) of an unsigned value (bit slices when c is a power of two)."""
    if (c & (c - 1)) == 0:
        return v >> (c.bit_length() - 1), v[:max(c.bit_length() - 1, 1)] if c > 1 else Const(0)
    return v // c, v % c


def beat_step(w: int, c: int) -> int:
    """A W-element beat's step in a striped memory, mod c (W > C only without a Kronecker part,
    which leaves act_q and kbuf unread)."""
    return w % c if w > c else w


def bank_offset(j: int, base, banks: int):
    """For a run of consecutive elements starting at bank ``base`` (< ``banks``): the position in
    the run of bank ``j``'s element, (j - base) mod banks, and whether the run wrapped before it
    (j < base: its element is one address further). No comparison is constant (lint)."""
    if j == banks - 1:
        return banks - 1 - base, Const(0)
    wrapped = base > j
    return Mux(wrapped, j + banks - base, j - base), wrapped


def bank_after(base, j: int, banks: int):
    """Bank (base + j) mod ``banks`` of a run's element j, for ``base`` < ``banks``."""
    j %= banks
    return base if j == 0 else Mux(base >= banks - j, base + j - banks, base + j)


#: Strides the units walk striped memories by, each as (div C, mod C): n2, n2*B, n2*(B-1), m2,
#: R*m2, (R-1)*m2 (registered from the registers, which change only while every unit is idle).
STRIDES = ("n2", "n2b", "n2b1", "m2", "rm2", "r1m2")


def stride_layout(cols: int) -> data.StructLayout:
    """``STRIDES``, each a struct of ``q`` (32 bits) and ``r`` (< C)."""
    pair = data.StructLayout({"q": unsigned(32), "r": unsigned(max(cols - 1, 1).bit_length())})
    return data.StructLayout({k: pair for k in STRIDES})
