"""With requantisation on, the golden output stays within the documented bound of the float reference."""

from __future__ import annotations

import numpy as np
import pytest

from doping import golden
from doping.synth import random_inputs, synth_layer


@pytest.mark.parametrize("shape,ratio,order", [
    ((64, 48), 4, None), ((64, 48), 10, "AX"), ((64, 48), 10, "XB"), ((120, 90), 25, None),
    ((2600, 1300), 25, None),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_bound_holds(shape, ratio, order, seed):
    layer = synth_layer(shape, ratio, seed=seed, order=order)
    # Half the calibrated range keeps fresh random data off the int8 rails: the bound is
    # stated for unsaturated passes.
    x = (random_inputs(layer, 16, seed=seed + 100).astype(np.int16) // 2).astype(np.int8)
    tr = golden.trace(layer, x)
    assert tr.saturations() == {"t": 0, "y": 0}
    err = np.abs(golden.dequantise_output(layer, tr.y) - golden.float_forward(layer, x))
    bound = golden.error_bound(layer)
    assert np.all(err <= bound[None, :] * (1 + 1e-9))
    # ...and the bound is not vacuous: it is small against the output range.
    assert bound.max() < 0.25 * np.abs(golden.float_forward(layer, x)).max()


@pytest.mark.parametrize("method,ratio", [("prune", 10), ("dense", 1), ("kp", 10)])
def test_error_bound_holds_for_baselines(method, ratio):
    from doping.synth import synth_method

    (layer,) = synth_method(method, (64, 48), ratio, seed=4)
    x = (random_inputs(layer, 16, seed=5).astype(np.int16) // 2).astype(np.int8)
    tr = golden.trace(layer, x)
    assert tr.saturations() == {"t": 0, "y": 0}
    err = np.abs(golden.dequantise_output(layer, tr.y) - golden.float_forward(layer, x))
    assert np.all(err <= golden.error_bound(layer)[None, :] * (1 + 1e-9))


def test_saturation_is_counted(rng):
    from tests.conftest import int8_batch, random_layer

    layer = random_layer(rng, 4, 3, 5, 2, rq=(golden.Requant(3, 0), golden.Requant(1, 0), golden.Requant(1, 0)))
    x = int8_batch(rng, 3, layer.n)
    tr = golden.trace(layer, x)
    t = tr.t_acc * 3
    assert tr.clipped["t"] == np.count_nonzero((t > 127) | (t < -128)) > 0
    y = tr.acc
    assert tr.clipped["y"] == np.count_nonzero((y > 127) | (y < -128)) > 0
