"""Compressing a user's own PyTorch model (``doping.compress``, issue 32): the swap keeps the
function until annealing starts, every method exports, and the non-PTB example runs end to end
(train, compress, anneal, export, Verilator bit-exact, estimate)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import doping.compress as dc
from doping.errors import DopingError
from doping.pack import read_pack


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 40), nn.Tanh(), nn.Linear(40, 5))


@pytest.mark.parametrize("method", dc.METHODS)
def test_swap_export_and_pack(method, tmp_path):
    model, x = mlp(), torch.randn(64, 24)
    before = model(x).detach()
    h = dc.compress(model, ratio=4, method=method, include=["0", "2"])
    assert set(h.layers) == {"0", "2"} and type(model[4]) is nn.Linear
    if method in ("dkp", "dense", "prune"):  # dense overlay / full matrix at the start: same function
        assert torch.allclose(model(x), before, atol=1e-5)
    if h.annealer(0, 10).modules:  # anneal to the budgets
        ann = h.annealer(0, 10)
        for step in range(11):
            ann.step(step)
        assert ann.done(10)
    layers = dc.export_pack(model, h, calib=lambda: model(x), path=tmp_path / "m.dpack")
    pack = read_pack(tmp_path / "m.dpack")
    assert [l.name for l in pack.layers] == [l.name for l in layers]
    assert {l.name.split(".")[0] for l in layers} == {"0", "2"}


def test_bad_requests_are_one_line_errors():
    with pytest.raises(DopingError, match="no nn.Linear"):
        dc.compress(mlp(), ratio=4, include="missing*")
    with pytest.raises(DopingError, match="method"):
        dc.compress(mlp(), ratio=4, method="hmd")
    with pytest.raises(DopingError, match="ratio"):
        dc.compress(mlp(), ratio=0.5)


def test_own_model_example_end_to_end(tmp_path):
    """examples/own_model.py at a small size: an MLP language model, its hidden layers doped at 4x,
    exported, bit-exact on the generated accelerator in Verilator, and estimated."""
    path = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"
    spec = importlib.util.spec_from_file_location("own_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.run(ratio=4, steps=200, out=tmp_path, vectors=4)
    assert r["verilator"]["mismatches"] == 0 and r["verilator"]["vectors"] == 8
    assert r["compression"]["param_ratio"] == pytest.approx(4.0, rel=0.02)
    assert np.isfinite(r["dkp_test_ppl"]) and r["dkp_test_ppl"] < 2 * r["dense_test_ppl"]
    assert all(f[0][1] > 1 and f[1][0] > 1 for f in (v["factors"] for v in r["pack"].values()))  # real factors
    assert r["estimate"]["cycles"] > 0 and (tmp_path / "report.json").is_file()
