"""The integer LSTM (docs/numerics.md §9): one doped gate mat-vec per layer and time step, then
bias, activations, cell state and the fed-back h, all in fixed point, bit-exact.

Per layer l and step t, on int8 ``v = [x_t; h_{t-1}]`` at the gate layer's input scale:

  acc   = the gate layers' joined int32 accumulator (numerics.md §4; a chain's last layer)
  a     = saturate(acc + bias, 32)                   bias: int32, at the accumulator's scale
  p     = requant(a, pre_rq, 8)                      int8 pre-activation, scale s_p
  i, f, o = SIGMOID[p], g = TANH[p]                  Q0.15 (int16 LUTs over the 256 int8 codes)
  c     = saturate(shift_round(f*c, 15) + shift_round(i*g, 15), 32)     Q0.15 in int32
  tc    = TANH_C[requant(c, cell_rq, 8)]             Q0.15
  h     = requant(o*tc, h_rq, 8)                     Q0.30 -> int8 at this layer's input scale
  h_out = requant(o*tc, out_rq, 8)                   ... and at the next layer's input scale

Rows of the gate output are torch's order: input, forget, cell, output, H each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doping.errors import PackError
from doping.golden.fixedpoint import Requant, requantise, saturate, shift_round
from doping.golden.layer import QuantLayer
from doping.golden.model import trace

#: Fraction bits of the activations and the cell state (Q0.15; c is held in int32).
Q = 15
ONE = 1 << Q
LUT_SIZE = 256  # one entry per int8 code, index code + 128
#: Pre-activations beyond ±PRE_CLIP and cell states beyond ±CELL_CLIP saturate the LUT input:
#: sigmoid(8) = 0.99966 and tanh(4) = 0.99933, so nothing is lost beyond them but resolution
#: would be (the int8 step is range / 127).
PRE_CLIP = 8.0
CELL_CLIP = 4.0


def quantise_bias(bias: np.ndarray, acc_scale: float) -> np.ndarray:
    """The gate bias in accumulator units: round half up, saturated to int32 (numerics.md §9)."""
    return np.clip(np.floor(np.asarray(bias, np.float64) / acc_scale + 0.5), -(1 << 31), (1 << 31) - 1).astype(np.int32)


def sigmoid_lut(scale: float) -> np.ndarray:
    """int16 Q0.15 sigmoid of every int8 code at ``scale`` (rounded, saturated to 32767)."""
    x = np.arange(-128, 128, dtype=np.float64) * scale
    return np.clip(np.floor(ONE / (1.0 + np.exp(-x)) + 0.5), 0, ONE - 1).astype(np.int16)


def tanh_lut(scale: float) -> np.ndarray:
    """int16 Q0.15 tanh of every int8 code at ``scale`` (rounded half up, saturated to ±32767)."""
    x = np.arange(-128, 128, dtype=np.float64) * scale
    return np.clip(np.floor(np.tanh(x) * ONE + 0.5), -(ONE - 1), ONE - 1).astype(np.int16)


@dataclass
class LSTMLayerQuant:
    """One integer LSTM layer: its gate layers and the cell's constants. The LUTs are stored, not
    recomputed, so that the arithmetic does not depend on a math library."""

    gates: list[QuantLayer]
    hidden: int
    bias: np.ndarray  # int32 (4H,), units of the last gate layer's accumulator scale
    pre_rq: Requant
    cell_rq: Requant
    h_rq: Requant
    out_rq: Requant
    sigmoid: np.ndarray  # int16 (256,)
    tanh: np.ndarray  # int16 (256,)
    tanh_c: np.ndarray  # int16 (256,)

    @property
    def input_size(self) -> int:
        return self.gates[0].n - self.hidden

    def validate(self) -> "LSTMLayerQuant":
        """Check what the arithmetic above and the cell unit rely on; PackError names the first
        problem (the gate layers are validated as pack layers)."""
        H, last = self.hidden, self.gates[-1]
        where = f"LSTM layer over {last.name!r}"
        if not isinstance(H, int) or H < 1:
            raise PackError(f"{where}: hidden size must be a positive integer, got {H!r}")
        if last.m != 4 * H:
            raise PackError(f"{where}: the gate layer has {last.m} outputs, an LSTM of hidden size {H} needs {4 * H}")
        if self.gates[0].n <= H:
            raise PackError(f"{where}: the gate layer has {self.gates[0].n} inputs, fewer than [x; h] with "
                            f"hidden size {H} needs")
        for prev, g in zip(self.gates, self.gates[1:]):
            if g.input != prev.name:
                raise PackError(f"{where}: gate layer {g.name!r} must take its input from {prev.name!r}")
        for name, arr, shape, dtype, lo, hi in (
                ("bias", self.bias, (4 * H,), np.int32, -(1 << 31), (1 << 31) - 1),
                ("sigmoid", self.sigmoid, (LUT_SIZE,), np.int16, 0, ONE - 1),
                ("tanh", self.tanh, (LUT_SIZE,), np.int16, -(ONE - 1), ONE - 1),
                ("tanh_c", self.tanh_c, (LUT_SIZE,), np.int16, -(ONE - 1), ONE - 1)):
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                raise PackError(f"{where}: {name} must be {np.dtype(dtype)} of shape {shape}")
            if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                raise PackError(f"{where}: {name} holds values outside {lo}..{hi}")
        return self


def gate_accumulator(gates: list[QuantLayer], v: np.ndarray) -> np.ndarray:
    """The joined int32 accumulator of a gate mat-vec (through a chain: each inner layer's int8
    output feeds the next), shape (batch, 4H), int64."""
    for layer in gates[:-1]:
        v = trace(layer, v).y
    return trace(gates[-1], v).acc


def pre_activation(layer: LSTMLayerQuant, v: np.ndarray) -> np.ndarray:
    """int8 pre-activations p (batch, 4H) of int8 ``v = [x; h]`` (batch, n): the gate mat-vec's
    accumulator plus bias, requantised (what the accelerator's y stream carries in an LSTM)."""
    a = saturate(gate_accumulator(layer.gates, v) + layer.bias.astype(np.int64)[None, :], 32)
    return requantise(a, layer.pre_rq, 8)


def step(layer: LSTMLayerQuant, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    """One time step: int8 ``x`` (batch, I), int8 ``h`` (batch, H), int32 ``c`` (batch, H) ->
    (h at this layer's input scale, h at the next layer's, c), int8/int8/int64."""
    v = np.concatenate([x, h], axis=1).astype(np.int8)
    return cell(layer, pre_activation(layer, v), c)


def cell(layer: LSTMLayerQuant, p: np.ndarray, c: np.ndarray):
    """The cell after the gate mat-vec: int8 pre-activations ``p`` (batch, 4H) and the int32 cell
    state ``c`` (batch, H) -> (h at this layer's input scale, h at the next layer's, new c)."""
    H = layer.hidden
    p = np.asarray(p, dtype=np.int64) + 128
    i = layer.sigmoid[p[:, :H]].astype(np.int64)
    f = layer.sigmoid[p[:, H:2 * H]].astype(np.int64)
    g = layer.tanh[p[:, 2 * H:3 * H]].astype(np.int64)
    o = layer.sigmoid[p[:, 3 * H:]].astype(np.int64)
    c = saturate(shift_round(f * c, Q) + shift_round(i * g, Q), 32)
    tc = layer.tanh_c[requantise(c, layer.cell_rq, 8) + 128].astype(np.int64)
    hq = o * tc
    return (requantise(hq, layer.h_rq, 8).astype(np.int8), requantise(hq, layer.out_rq, 8).astype(np.int8), c)


def run_sequence(layers: list[LSTMLayerQuant], xs: np.ndarray, state=None):
    """Int8 inputs ``xs`` (T, batch, I) through the stack; returns (outputs (T, batch, H) int8 at
    the last layer's output scale, state). ``state``: per layer (h int8, h_next int8, c int64);
    None starts from zeros (a new sequence)."""
    T, B, _ = xs.shape
    if state is None:
        state = [(np.zeros((B, l.hidden), np.int8), None, np.zeros((B, l.hidden), np.int64)) for l in layers]
    state = list(state)
    out = np.empty((T, B, layers[-1].hidden), np.int8)
    for t in range(T):
        v = xs[t]
        for k, layer in enumerate(layers):
            h, h_next, c = step(layer, v, state[k][0], state[k][2])
            state[k] = (h, h_next, c)
            v = h_next
        out[t] = v
    return out, state
