"""cocotb + Verilator (and an Icarus subset) regression of the generated accelerator.

Every output is compared with the golden model inside the testbench; cycle counts of runs without
back-pressure must equal the estimator's cycle model exactly.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from doping.arch import UNITS
from doping.compression import divisors
from doping.config import PRESETS, AccelConfig
from doping.errors import DopingError
from doping.estimate.cycles import vector_times

from doping.golden import Requant
from doping.pack import read_pack, write_pack
from doping.sim.runner import run
from doping.synth import synth_layer
from tests.conftest import random_layer
from tests.hw.test_top import _layer_with_rows

SIM_CONFIGS = {
    "r2c3l2": AccelConfig(rows=2, cols=3, lanes=2, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                          max_nnz=4096),
    "r4c4l3": AccelConfig(rows=4, cols=4, lanes=3, max_m=96, max_n=96, max_factor=256, max_intermediate=512,
                          max_nnz=8192),
    # 4 elements a beat on x and y, batches of 4 vectors through the first GEMM
    "r1c5l4w4b4": AccelConfig(rows=1, cols=5, lanes=4, stream_bytes=4, batch=4, max_m=80, max_n=64, max_factor=256,
                              max_intermediate=512, max_nnz=8192),
}


def random_packs(tmp_path, cfg, count, seed):
    """``count`` packs of random shapes, factorisations, orders and ratios that fit ``cfg`` (and
    its ``stream_bytes``: XB layers with n2 >= W)."""
    rng = np.random.default_rng(seed)
    paths = []
    while len(paths) < count:
        m, n = int(rng.integers(2, cfg.max_m + 1)), int(rng.integers(2, cfg.max_n + 1))
        m1, n1 = int(rng.choice(divisors(m))), int(rng.choice(divisors(n)))
        shapes = ((m1, n1), (m // m1, n // n1))
        kp = m1 * n1 + (m // m1) * (n // n1)
        if kp >= m * n:
            continue
        ratio = float(rng.uniform(1.0, m * n / kp))
        layer = synth_layer((m, n), ratio, seed=int(rng.integers(1 << 30)), factor_shapes=shapes,
                            order=str(rng.choice(["AX", "XB"])), name=f"s{len(paths)}")
        try:
            cfg.check(layer)
        except DopingError:  # does not fit this config: draw another
            continue
        paths.append(write_pack(tmp_path / f"p{len(paths)}.dpack", [layer]))
    return paths


@pytest.mark.parametrize("cfg_name", sorted(SIM_CONFIGS))
def test_random_shapes_with_backpressure(tmp_path, cfg_name):
    cfg = SIM_CONFIGS[cfg_name]
    packs = random_packs(tmp_path, cfg, 8, seed=zlib.crc32(cfg_name.encode()) % 1000)  # stable across processes
    r = run(packs, cfg, vectors=48, seed=1, x_gap=0.2, y_stall=0.3, load_gap=0.1, reset_mid_vector=True)
    assert r.vectors == 8 * 48 and r.mismatches == 0, r.first_mismatch
    assert len(r.latency_cycles) == 8 * 48


@pytest.mark.parametrize("cfg_name", sorted(SIM_CONFIGS))
def test_cycles_equal_estimator(tmp_path, cfg_name):
    cfg = SIM_CONFIGS[cfg_name]
    packs = random_packs(tmp_path, cfg, 10, seed=7 + len(cfg_name))
    vectors = max(2, cfg.batch)  # back to back: two vectors, or one whole batch
    r = run(packs, cfg, vectors=vectors, seed=2)
    assert r.mismatches == 0
    want = [t["latency"] for p in packs for t in vector_times(read_pack(p).layer(), cfg, vectors)]
    assert r.latency_cycles == want
    # every unit was busy at some point of every pack's run, and none longer than the run
    for busy in r.busy_cycles:
        assert all(0 < busy[u] <= busy["cycles"] for u in UNITS)


def test_baseline_method_packs(tmp_path):
    """Pruned, dense and LMF-chain packs (the baselines, on the same design): bit-exact under
    back-pressure, and cycles equal to the model in a clean run (LMF: both layers, U on V's outputs)."""
    from doping.synth import synth_method

    cfg = SIM_CONFIGS["r4c4l3"]
    rng = np.random.default_rng(21)
    packs = []
    for method in ("prune", "dense", "lmf", "prune"):
        # within r4c4l3: a dense factor holds <= 256 entries, and m <= 32 (kbuf half per bank)
        hi = 17 if method == "dense" else 33
        m, n = int(rng.integers(8, hi)), int(rng.integers(8, hi))
        ratio = 1 if method == "dense" else float(rng.uniform(2, 6))
        packs.append(write_pack(tmp_path / f"{method}{len(packs)}.dpack", synth_method(method, (m, n), ratio, seed=len(packs))))
    r = run(packs, cfg, vectors=30, seed=8, x_gap=0.2, y_stall=0.3, load_gap=0.1)
    assert r.mismatches == 0 and r.vectors == 30 * 5, r.first_mismatch
    clean = run(packs, cfg, vectors=2, seed=9)
    want = [t["latency"] for p in packs for l in read_pack(p).layers for t in vector_times(l, cfg, 2)]
    assert clean.mismatches == 0 and clean.latency_cycles == want


def test_resident_layers(tmp_path):
    """A pack of three layers (DKP, then LMF's chain) loaded once into three regions; each runs
    after a switch by register words alone, bit-exact under back-pressure, cycles equal the model."""
    from dataclasses import replace

    from doping.synth import synth_method

    cfg = replace(SIM_CONFIGS["r4c4l3"], resident_layers=3)
    layers = [synth_layer((30, 28), 3, seed=4, name="dkp")] + synth_method("lmf", (24, 20), 3, seed=5)
    pack = write_pack(tmp_path / "three.dpack", layers)
    r = run([pack], cfg, vectors=20, seed=3, x_gap=0.2, y_stall=0.3, resident=True)
    assert r.mismatches == 0 and r.vectors == 60, r.first_mismatch
    clean = run([pack], cfg, vectors=2, seed=4, resident=True)
    assert clean.latency_cycles == [t["latency"] for l in layers for t in vector_times(l, cfg, 2)]
    with pytest.raises(DopingError, match="the config holds 1"):
        run([pack], SIM_CONFIGS["r4c4l3"], vectors=1, resident=True)


def _corner_layers(rng):
    big = AccelConfig(rows=2, cols=3, lanes=2, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                      max_nnz=4096)
    layers = {
        "empty_overlay": random_layer(rng, 3, 2, 4, 5, nnz=0),
        "one_row": _layer_with_rows(rng, 2, 2, 3, 4, [0, 0, 8, 0, 0, 0]),
        "dense_rows": _layer_with_rows(rng, 2, 2, 3, 4, [8, 8, 0, 8, 1, 8]),
        "one_by_one": random_layer(rng, 1, 1, 6, 7, nnz=10),
        "largest": synth_layer((64, 64), 4, seed=3, factor_shapes=((8, 8), (8, 8))),
    }
    lim = random_layer(rng, 3, 3, 3, 3, nnz=30, rq=(Requant(32767, 0), Requant(32767, 0), Requant(32767, 0)))
    lim.a[:] = 127
    lim.b[:] = -128
    lim.vals[:] = -128
    layers["int8_limits_saturating"] = lim.validate()
    for name, layer in layers.items():
        layer.name = name
        big.check(layer)
    return big, layers


def test_corner_packs(tmp_path, rng):
    cfg, layers = _corner_layers(rng)
    packs = [write_pack(tmp_path / f"{k}.dpack", [v]) for k, v in layers.items()]
    r = run(packs, cfg, vectors=30, seed=3, x_gap=0.1, y_stall=0.2)
    assert r.mismatches == 0, r.first_mismatch
    assert [p["vectors"] for p in r.packs] == [30] * len(packs)


def test_reset_mid_vector_then_recovery(tmp_path):
    cfg = SIM_CONFIGS["r2c3l2"]
    packs = random_packs(tmp_path, cfg, 2, seed=11)
    r = run(packs, cfg, vectors=20, seed=4, reset_mid_vector=True, y_stall=0.2)
    assert r.mismatches == 0 and r.vectors == 40


@pytest.mark.parametrize("mutation", ["round_down", "gather_off_by_one"])
def test_mutation_is_caught(tmp_path, mutation):
    cfg = SIM_CONFIGS["r2c3l2"]
    packs = random_packs(tmp_path, cfg, 2, seed=5)
    r = run(packs, cfg, vectors=20, seed=5, mutation=mutation)
    assert r.mismatches > 0, f"the regression did not notice the {mutation} bug"
    # the scoreboard reports every mismatching vector's count and the first few elements
    ex = r.mismatch_examples
    assert 1 <= len(ex) <= 5 and len(ex) == min(5, r.mismatches) and ex[0] == r.first_mismatch
    assert all(e["got"] != e["want"] and e["elements_wrong"] >= 1 for e in ex)


def test_icarus_subset(tmp_path):
    cfg = SIM_CONFIGS["r2c3l2"]
    packs = random_packs(tmp_path, cfg, 2, seed=13)
    r = run(packs, cfg, simulator="icarus", vectors=10, seed=6, x_gap=0.2, y_stall=0.2)
    assert r.simulator == "icarus" and r.mismatches == 0 and r.vectors == 20


@pytest.mark.slow
@pytest.mark.parametrize("cfg_name", sorted(SIM_CONFIGS))
def test_full_regression(tmp_path, cfg_name):
    """make sim-full: 35 random shapes x 100 vectors per config (105 shapes, 10,500 vectors)."""
    cfg = SIM_CONFIGS[cfg_name]
    packs = random_packs(tmp_path, cfg, 35, seed=1000 + len(cfg_name) + cfg.lanes)
    r = run(packs, cfg, vectors=100, seed=9, x_gap=0.2, y_stall=0.3, load_gap=0.05)
    assert r.vectors == 3500 and r.mismatches == 0, r.first_mismatch
    # back-pressure only ever adds cycles: no vector is faster than the same place in a batch
    # (one vector at B = 1) from idle
    low = []
    for p in packs:
        layer = read_pack(p).layer()
        b = cfg.batch if layer.has_kp else 1
        low.append([t["latency"] for t in vector_times(layer, cfg, b)])
    assert all(c >= low[i // 100][i % 100 % len(low[i // 100])] for i, c in enumerate(r.latency_cycles))


@pytest.mark.slow
def test_eight_element_beats(tmp_path):
    """stream_bytes = 8 (= cols) on random Kronecker packs (beats straddling rows of X and K) and a
    pruned one with a padded last beat: bit-exact under back-pressure and stalls, clean-run cycles
    equal the model."""
    from doping.synth import synth_method

    cfg = AccelConfig(rows=2, cols=8, lanes=8, stream_bytes=8, max_m=64, max_n=64, max_factor=256,
                      max_intermediate=512, max_nnz=8192)
    packs = random_packs(tmp_path, cfg, 6, seed=88)
    packs.append(write_pack(tmp_path / "prune.dpack", synth_method("prune", (45, 37), 4, seed=3)))
    r = run(packs, cfg, vectors=50, seed=8, x_gap=0.2, y_stall=0.3, load_gap=0.1)
    assert r.mismatches == 0 and r.vectors == 350, r.first_mismatch
    clean = run(packs, cfg, vectors=2, seed=9)
    assert clean.latency_cycles == [t["latency"] for p in packs for t in vector_times(read_pack(p).layer(), cfg, 2)]


def test_runner_leaves_the_environment_as_it_found_it():
    import os

    from doping.sim.runner import tool_env

    before = dict(os.environ)
    with tool_env("verilator"):
        assert "CFG_CXXFLAGS_PCH_I=-include" in os.environ["MAKEFLAGS"]
        assert "OPT_FAST" not in os.environ["MAKEFLAGS"]
        assert os.environ["PATH"].split(os.pathsep)[0].endswith("bin")
    with tool_env("verilator", "-O1"):
        assert os.environ["MAKEFLAGS"].endswith("OPT_FAST=-O1 OPT_GLOBAL=-O1")
    assert dict(os.environ) == before


def test_cxx_opt_level_comes_from_the_caller_the_environment_or_the_default(monkeypatch):
    from doping.sim.runner import CXX_OPT_DEFAULT, cxx_opt

    monkeypatch.delenv("DOPING_CXX_OPT", raising=False)
    assert cxx_opt() == CXX_OPT_DEFAULT and cxx_opt("-O2") == "-O2"
    monkeypatch.setenv("DOPING_CXX_OPT", "-Os")
    assert cxx_opt() == "-Os" and cxx_opt("-O1") == "-O1"
    for bad in ("-O3 -march=native", "; rm -rf /", "O0"):
        monkeypatch.setenv("DOPING_CXX_OPT", bad)
        with pytest.raises(DopingError, match="DOPING_CXX_OPT"):
            cxx_opt()


def _batch_run(tmp_path, cfg, shapes, vectors, seed):
    """Random Kronecker packs at ``cfg.batch``: bit-exact with reset mid-vector and back-pressure
    on every stream, then a clean run whose per-vector cycles equal the model for batches back to
    back."""
    packs = random_packs(tmp_path, cfg, shapes, seed=seed)
    r = run(packs, cfg, vectors=vectors, seed=seed, x_gap=0.2, y_stall=0.3, load_gap=0.1, reset_mid_vector=True)
    assert r.vectors == shapes * vectors and r.mismatches == 0, r.first_mismatch
    clean = run(packs, cfg, vectors=2 * cfg.batch, seed=seed + 1)
    want = [t["latency"] for p in packs for t in vector_times(read_pack(p).layer(), cfg, 2 * cfg.batch)]
    assert clean.mismatches == 0 and clean.latency_cycles == want


def test_vector_count_must_fill_batches(tmp_path):
    """The lanes (and a Kronecker layer's first GEMM) wait for a whole batch: a run that could not
    end is refused before anything is built."""
    cfg = SIM_CONFIGS["r1c5l4w4b4"]
    with pytest.raises(DopingError, match=r"vectors \(6\) must be a multiple of the config's batch \(4\)"):
        run(random_packs(tmp_path, cfg, 1, seed=42), cfg, vectors=6)


@pytest.mark.slow
def test_batch_of_eight(tmp_path):
    """batch = 8, four-element beats, a 3x5 array: 20 random packs x 96 vectors."""
    cfg = AccelConfig(rows=3, cols=5, lanes=8, stream_bytes=4, batch=8, max_m=80, max_n=64, max_factor=256,
                      max_intermediate=512, max_nnz=8192)
    _batch_run(tmp_path, cfg, shapes=20, vectors=96, seed=43)


@pytest.mark.slow
def test_eight_element_beats_in_batches_of_four(tmp_path):
    """The flagship preset's stream and batch (W = 8, B = 4) on a 2x8 array, 8 lanes: 12 random
    packs x 32 vectors under back-pressure and a reset mid-vector (the C++ build alone took most of
    65 min beside three trainings)."""
    cfg = AccelConfig(rows=2, cols=8, lanes=8, stream_bytes=8, batch=4, max_m=96, max_n=96, max_factor=256,
                      max_intermediate=1024, max_nnz=8192)
    _batch_run(tmp_path, cfg, shapes=12, vectors=32, seed=44)


def test_sim_json_reports_latency_total_and_interval(tmp_path, capsys):
    """`doping sim --json` names its measures as the estimator does: each vector's latency, the
    total cycles, and the measured interval between vectors streaming back to back (no gaps, no
    stalls: exactly the cycle model's)."""
    import json

    from doping.cli import main

    layer = synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))
    pack = write_pack(tmp_path / "p.dpack", [layer])
    assert main(["sim", "--pack", str(pack), "--config", "minimal", "--vectors", "6", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    times = vector_times(layer, PRESETS["minimal"], 6)
    ends = [t["x"] + t["latency"] for t in times]
    assert r["latency_cycles"] == [t["latency"] for t in times]
    assert r["interval_cycles"] == pytest.approx((ends[-1] - ends[0]) / 5)
    assert r["interval_cycles"] < max(r["latency_cycles"]) <= r["total_cycles"]
    assert "cycles_per_vector" not in r
