"""Payload layouts of the accelerator's streams (``amaranth.lib.stream``, valid/ready).

``load``: one ``LoadWord`` a beat (``doping.arch``: sel, bank|offset address, data). ``x``: W =
``stream_bytes`` int8 input elements a beat, ceil(n / W) beats a vector, element e in beat
e // W at position e % W. ``y``: W int8 outputs a beat and ``last`` on a vector's final beat;
positions past m in that beat are padding. The LSTM top's ``tok`` and ``h``: W int8 elements a beat
as on x (``token_layout``, ``h_layout``). The host side of every format is in ``doping.arch``."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from doping.arch import ELEMENT_BITS, LOAD_ADDR_BITS, LOAD_DATA_BITS, LOAD_SEL_BITS
from doping.config import AccelConfig

#: Load-stream payload (``doping.arch.pack_load_word`` packs the same bits on the host).
LoadWord = data.StructLayout({"sel": unsigned(LOAD_SEL_BITS), "addr": unsigned(LOAD_ADDR_BITS),
                              "data": unsigned(LOAD_DATA_BITS)})


def x_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """One beat of the x stream: ``stream_bytes`` int8 elements (``doping.arch.x_beats`` packs
    the same bits on the host)."""
    return data.ArrayLayout(signed(ELEMENT_BITS), cfg.stream_bytes)


def y_layout(cfg: AccelConfig) -> data.StructLayout:
    """One beat of the y stream: ``stream_bytes`` int8 outputs, ``last`` on a vector's final beat
    (``doping.arch.y_beat`` reads it on the host)."""
    return data.StructLayout({"data": x_layout(cfg), "last": unsigned(1)})


def token_layout(cfg: AccelConfig) -> data.StructLayout:
    """One ``tok`` beat of the LSTM top: ``stream_bytes`` int8 input elements (as on x) and
    ``first``, which marks the first token of a sequence (read on the token's first beat).
    ``doping.arch.token_beats`` packs it on the host."""
    return data.StructLayout({"data": x_layout(cfg), "first": 1})


def h_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """One ``h`` beat of the LSTM top: ``stream_bytes`` int8 elements of the last layer's h
    (``doping.arch.h_elements``)."""
    return x_layout(cfg)
