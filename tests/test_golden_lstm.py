"""The integer LSTM (golden/lstm.py, numerics.md §9): LUTs, one step against a scalar
re-implementation of the spec, and the state carried across calls."""

from __future__ import annotations

import numpy as np
import pytest

from doping.golden import Requant
from doping.golden.lstm import LSTMLayerQuant, run_sequence, sigmoid_lut, step, tanh_lut
from doping.synth import synth_layer


def _layer(rng, inputs, hidden, seed):
    gate = synth_layer((4 * hidden, inputs + hidden), 3, seed=seed)
    s_p, s_c = 8 / 127, 4 / 127
    acc = gate.scales()["acc"]
    return LSTMLayerQuant(gates=[gate], hidden=hidden, bias=rng.integers(-3000, 3000, 4 * hidden).astype(np.int32),
                          pre_rq=Requant.from_real(acc / s_p), cell_rq=Requant.from_real(2.0 ** -15 / s_c),
                          h_rq=Requant.from_real(2.0 ** -30 / gate.x_scale),
                          out_rq=Requant.from_real(2.0 ** -30 / (gate.x_scale * 1.3)),
                          sigmoid=sigmoid_lut(s_p), tanh=tanh_lut(s_p), tanh_c=tanh_lut(s_c))


def test_luts_round_the_functions():
    for scale in (8 / 127, 0.01, 0.3):
        x = np.arange(-128, 128) * scale
        sig, th = sigmoid_lut(scale), tanh_lut(scale)
        assert sig.dtype == np.int16 and len(sig) == 256
        assert np.all(np.abs(sig / 2 ** 15 - 1 / (1 + np.exp(-x))) <= 2 ** -16 + 1e-12 + (sig == 32767) * 2 ** -15)
        assert np.all(np.abs(th / 2 ** 15 - np.tanh(x)) <= 2 ** -16 + 1e-12 + (np.abs(th) == 32767) * 2 ** -15)
        assert np.all(np.diff(sig.astype(int)) >= 0) and np.all(np.diff(th.astype(int)) >= 0)
    assert sigmoid_lut(0.1)[128] == 16384 and tanh_lut(0.1)[128] == 0


def _rq(v, rq, bits):
    """Scalar requant of numerics.md §3, written out."""
    p = v * rq.multiplier
    r = p if rq.shift == 0 else (p + (1 << (rq.shift - 1))) >> rq.shift
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(r, lo), hi)


def _sr(v, k):
    return (v + (1 << (k - 1))) >> k


def test_step_equals_a_scalar_reading_of_the_spec():
    rng = np.random.default_rng(3)
    layer = _layer(rng, 6, 5, seed=1)
    H = layer.hidden
    x = rng.integers(-128, 128, (3, 6)).astype(np.int8)
    h = rng.integers(-128, 128, (3, H)).astype(np.int8)
    c = rng.integers(-(3 << 15), 3 << 15, (3, H)).astype(np.int64)
    h1, h2, c1 = step(layer, x, h, c)
    from doping.golden.model import trace

    acc = trace(layer.gates[0], np.concatenate([x, h], axis=1)).acc
    for b in range(3):
        for j in range(H):
            pre = [_rq(min(max(int(acc[b, g * H + j]) + int(layer.bias[g * H + j]), -2 ** 31), 2 ** 31 - 1),
                       layer.pre_rq, 8) + 128 for g in range(4)]
            i, f, o = (int(layer.sigmoid[pre[g]]) for g in (0, 1, 3))
            g_ = int(layer.tanh[pre[2]])
            cn = _sr(f * int(c[b, j]), 15) + _sr(i * g_, 15)
            tc = int(layer.tanh_c[_rq(cn, layer.cell_rq, 8) + 128])
            assert (int(c1[b, j]), int(h1[b, j]), int(h2[b, j])) == (cn, _rq(o * tc, layer.h_rq, 8),
                                                                     _rq(o * tc, layer.out_rq, 8))


def test_sequence_state_carries_and_resets():
    rng = np.random.default_rng(4)
    layers = [_layer(rng, 6, 5, seed=2), _layer(rng, 5, 5, seed=3)]
    xs = rng.integers(-128, 128, (8, 2, 6)).astype(np.int8)
    whole, _ = run_sequence(layers, xs)
    first, state = run_sequence(layers, xs[:3])
    rest, _ = run_sequence(layers, xs[3:], state)
    assert np.array_equal(whole, np.concatenate([first, rest]))
    fresh, _ = run_sequence(layers, xs[3:])
    assert not np.array_equal(fresh, rest)  # a new sequence starts from zero state


@pytest.mark.parametrize("method", ["lmf", "prune"])
def test_gate_chain_and_sparse_gates(method):
    """A gate mat-vec may be LMF's chain or a pruned layer: the step runs it through the chain."""
    from doping.synth import synth_method

    rng = np.random.default_rng(5)
    gates = synth_method(method, (20, 11), 3, seed=4)
    s_p = 8 / 127
    layer = LSTMLayerQuant(gates=gates, hidden=5, bias=np.zeros(20, np.int32),
                           pre_rq=Requant.from_real(gates[-1].scales()["acc"] / s_p),
                           cell_rq=Requant.from_real(2.0 ** -15 / (4 / 127)), h_rq=Requant.from_real(2.0 ** -30 / 0.01),
                           out_rq=Requant.from_real(2.0 ** -30 / 0.01), sigmoid=sigmoid_lut(s_p), tanh=tanh_lut(s_p),
                           tanh_c=tanh_lut(4 / 127))
    out, state = run_sequence([layer], rng.integers(-128, 128, (4, 3, 6)).astype(np.int8))
    assert out.shape == (4, 3, 5) and state[0][2].dtype == np.int64
