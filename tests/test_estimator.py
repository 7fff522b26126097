"""Estimator: SRAM equals the generated design, energy/area/power are consistent, baselines and
bad input. (Cycles equal the RTL: tests/hw/test_cycle_model.py and tests/sim/test_cocotb.py.)"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from doping.cli import main
from doping.errors import DopingError
from doping.config import PRESETS, AccelConfig
from doping.estimate.baselines import fit_config, price
from doping.estimate.model import AREA_FIT, cell_area_um2, estimate, logic_area_um2
from doping.hw.verilog import generate
from doping.synth import synth_layer


def test_sram_bits_equal_generated_manifest(tmp_path):
    layer = synth_layer((60, 40), 5, seed=1)
    cfg = fit_config(PRESETS["minimal"], layer)
    r = estimate(layer, cfg)
    man = generate(cfg, tmp_path)
    assert r.sram_bits == {k: v["bits"] for k, v in man["memories"].items()}


def test_energy_and_power_are_consistent():
    layer = synth_layer((260, 130), 10, seed=2)
    r = estimate(layer, fit_config(PRESETS["default"], layer))
    assert r.energy_pj == pytest.approx(sum(r.breakdown.energy_pj.values()))
    assert r.area_mm2 == pytest.approx(sum(r.breakdown.area_mm2.values()))
    # latency from one vector's cycles, power while streaming: one vector's energy per interval,
    # both at the lower of the config's clock and the netlist's estimate
    assert r.clock_mhz == min(r.config.clock_mhz, r.fmax_estimate_mhz)
    assert r.latency_us == pytest.approx(r.cycles / r.clock_mhz)
    assert 0 < r.interval_cycles <= r.cycles
    assert r.power_mw == pytest.approx(r.energy_pj * 1e-12 / (r.interval_cycles / (r.clock_mhz * 1e6)) * 1e3)
    # MAC energy alone is a floor: every nonzero and every KP MAC costs at least one int8 MAC
    assert r.breakdown.energy_pj["gather_macs"] >= layer.nnz * 0.315 - 1e-6
    # a smaller node costs less energy and area
    cfg7 = fit_config(AccelConfig(tech_nm=7), layer)
    r7 = estimate(layer, cfg7)
    assert r7.energy_pj < r.energy_pj and r7.area_mm2 < r.area_mm2


@pytest.mark.parametrize("method", ["dkp", "kp", "prune", "dense", "lmf"])
def test_every_method_priced_as_a_pack_on_the_generated_design(method):
    """No method is priced at "ideal": each is its synthetic pack on the same generated design,
    with the exact cycle model of every layer and the SRAM the generator instantiates."""
    from doping.estimate import schedule
    from doping.estimate.baselines import ARRAYS, LANES, balanced_config
    from doping.synth import synth_method

    ratio = 1 if method == "dense" else 8
    base = PRESETS["minimal"]
    r = price(120, 60, ratio, method, base)
    cfg = r.config
    assert (cfg.rows, cfg.cols, cfg.lanes) == (base.rows, base.cols, base.lanes)
    layers = synth_method(method, (120, 60), ratio)
    assert len(r.layers) == len(layers) == (2 if method == "lmf" else 1)
    assert r.cycles == sum(schedule(l, cfg).cycles for l in layers)
    assert r.interval_cycles == sum(schedule(l, cfg).interval for l in layers)
    assert r.sram_bits == cfg.sram_bits()
    assert r.energy_pj == pytest.approx(sum(p.energy_pj for p in r.layers))
    b = price(120, 60, ratio, method, base, balanced=True)
    bc = b.config
    assert (bc.rows, bc.cols) in ARRAYS and bc.lanes in LANES
    assert b.interval_cycles * b.area_mm2 <= r.interval_cycles * r.area_mm2 * (1 + 1e-9) or \
        (base.rows, base.cols) not in ARRAYS
    assert balanced_config(base, layers) == bc


@pytest.mark.parametrize("args,message", [
    (["--layer", "260x130", "--ratio", "10", "--method", "magic"], "unknown method 'magic'"),
    (["--layer", "2600x1300", "--ratio", "1000"], "alone need 3690"),
    (["--layer", "260x130"], "give a PACK, or --layer MxN and --ratio R"),
])
def test_estimate_bad_input(args, message, capsys):
    assert main(["estimate", *args]) == 2
    assert message in capsys.readouterr().err


def test_estimate_pack_too_big_for_config(tmp_path, capsys):
    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--shape", "260x130", "--ratio", "10", "-o", str(pack)]) == 0
    assert main(["estimate", str(pack), "--config", "minimal"]) == 2
    assert "does not fit the accelerator config" in capsys.readouterr().err
    assert main(["estimate", str(pack), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"cycles", "sram_bits", "energy_pj", "area_mm2", "power_mw", "breakdown"} <= set(out)


def test_sweep_and_dse_write_outputs(tmp_path, capsys):
    assert main(["sweep", "--layer", "120x60", "--ratios", "5,20", "--methods", "dkp,dense,prune,lmf,kp",
                 "-o", str(tmp_path / "sw")]) == 0
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 10_000
    rows = (tmp_path / "sw" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 9 and "interval_cycles" in rows[0] and "design" in rows[0]  # dense once
    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--shape", "120x60", "--ratio", "10", "-o", str(pack)]) == 0
    assert main(["dse", str(pack), "--latency-us", "5", "-o", str(tmp_path / "dse")]) == 0
    d = json.loads((tmp_path / "dse" / "dse.json").read_text())
    assert d["pareto"] and d["best_edp"]["edp"] == min(p["edp"] for p in d["points"])
    z = d["balanced"]
    assert z["interval_cycles"] * z["area_mm2"] == min(p["interval_cycles"] * p["area_mm2"] for p in d["points"])
    assert z["binding"] == next(iter(z["busy"])) and z["busy"][z["binding"]] >= 0.9


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (make setup installs it as root)")
def test_area_model_and_clock_against_yosys(tmp_path):
    from doping.estimate.model import TIMING
    from doping.hw.tools import yosys_synth

    fit = json.loads(AREA_FIT.read_text())
    assert len(fit["checks"]) >= 5 and max(abs(c["error"]) for c in fit["checks"]) < 0.2
    cfg = AccelConfig(rows=3, cols=2, lanes=2, max_m=256, max_n=256, max_factor=256, max_intermediate=256,
                      max_nnz=4096, batch=2)  # held out of the fit, and at a batch (the batch terms)
    man = generate(cfg, tmp_path)
    mods, levels = yosys_synth(tmp_path / man["files"][0], "doping_accel", tmp_path / "stat.json")
    yosys_um2 = sum(cell_area_um2(m["by_type"]) for m in mods.values())
    assert logic_area_um2(cfg) == pytest.approx(yosys_um2, rel=0.2)
    # the estimator's clock is no faster than this config's netlist allows
    assert 10 < levels <= json.loads(TIMING.read_text())["max_levels"]


def test_multi_layer_pack_per_token_counts_the_reloads(tmp_path):
    """One layer held: every token reloads each layer (words and DRAM). Both resident: a layer
    switch is its register words. (That these are the RTL's cycles: tests/hw/test_cycle_model.py.)"""
    from dataclasses import replace

    from doping.estimate.model import HANDOVER_CYCLES, per_token, static_pj_per_cycle
    from doping.hw.loader import load_words, register_words
    from doping.pack import write_pack

    layers = [synth_layer((120, 60), 6, seed=s, name=f"l{s}") for s in (1, 2)]
    cfg = fit_config(PRESETS["default"], layers[0])
    t = per_token(layers, cfg)
    runs = [estimate(l, cfg) for l in layers]
    assert t.cycles_per_token == sum(len(load_words(l, cfg)) + r.cycles + HANDOVER_CYCLES
                                        for l, r in zip(layers, runs))
    assert t.resident_cycles_per_token == sum(len(register_words(l, cfg)) + r.cycles + HANDOVER_CYCLES
                                                 for l, r in zip(layers, runs))
    # a vector's energy, its static share (clock, leakage) counted over its latency, the handover
    # and its register words instead of its interval
    static = static_pj_per_cycle(cfg)
    assert static > 0
    assert t.energy_per_token_pj > t.resident_energy_per_token_pj == pytest.approx(
        sum(r.energy_pj + static * (len(register_words(l, cfg)) + r.cycles + HANDOVER_CYCLES - r.interval_cycles)
            for l, r in zip(layers, runs)))
    assert "reloads each layer" in t.weights and not t.resident
    cfg2 = replace(cfg, resident_layers=2)
    both = per_token(layers, cfg2)
    assert both.resident and both.cycles_per_token == t.resident_cycles_per_token
    # no DRAM; larger weight memories cost a little more per access
    assert both.energy_per_token_pj == pytest.approx(both.resident_energy_per_token_pj)
    assert t.resident_energy_per_token_pj < both.energy_per_token_pj < t.energy_per_token_pj
    pack = write_pack(tmp_path / "two.dpack", layers)
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps(cfg.as_dict()))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["estimate", str(pack), "--config", str(cfg_file), "--json"]) == 0
    assert json.loads(buf.getvalue())["per_token"]["cycles_per_token"] == t.cycles_per_token


def test_lstm_per_token_resident_streamed_and_design():
    """The LSTM top per token: resident when the config holds every layer; otherwise a model that
    reloads each layer's words every token (more cycles, DRAM energy); the design point minimises
    cycles per token x area over the candidates it lists."""
    from doping.estimate.lstm import lstm_config, lstm_design, lstm_per_token
    from doping.hw.loader import lstm_load_words
    from doping.synth import synth_lstm

    _, cells = synth_lstm(10, 8, 2, 4, seed=2)
    cfg = lstm_config(PRESETS["minimal"], 2)
    res = lstm_per_token(cells, cfg)
    assert res.resident and all(r.reload_energy_pj == 0 for r in res.layers)
    streamed = lstm_per_token(cells, dataclasses.replace(cfg, resident_layers=1))
    words = sum(len(lstm_load_words([c], dataclasses.replace(cfg, resident_layers=1))) for c in cells)
    assert not streamed.resident and "model only" in streamed.weights
    assert streamed.cycles_per_token == res.cycles_per_token + words
    assert streamed.energy_per_token_pj > res.energy_per_token_pj
    best, table = lstm_design(PRESETS["minimal"], cells)
    assert best.lstm_cell == 1 and best.resident_layers == 2 and len(table) == 28
    key = min(t["cycles_per_token"] * t["area_mm2"] for t in table)
    best_cost = lstm_per_token(cells, best)
    assert best_cost.cycles_per_token * best_cost.area_mm2 == pytest.approx(key)
    with pytest.raises(DopingError, match="lstm_cell = 1"):
        lstm_per_token(cells, PRESETS["minimal"])


def test_typed_results_round_trip_json(capsys):
    """Every estimate is a dataclass whose to_json() comes back through from_json() unchanged
    (the flow caches its estimate stage as JSON), and `doping estimate --json` prints it with the
    keys scripts read."""
    from doping.estimate.lstm import lstm_config, lstm_per_token
    from doping.estimate.model import combine
    from doping.estimate.results import LayerEstimate, LSTMEstimate, ModelEstimate
    from doping.synth import synth_lstm

    layer = synth_layer((120, 60), 8, seed=1)
    e = estimate(layer, fit_config(PRESETS["minimal"], layer))
    assert LayerEstimate.from_json(json.loads(json.dumps(e.to_json()))).to_json() == json.loads(json.dumps(e.to_json()))
    _, cells = synth_lstm(10, 8, 2, 4, seed=2)
    t = lstm_per_token(cells, lstm_config(PRESETS["minimal"], 2))
    m = dataclasses.replace(combine([e, e]), lstm=t)
    back = ModelEstimate.from_json(json.loads(json.dumps(m.to_json())))
    assert isinstance(back.lstm, LSTMEstimate) and isinstance(back.layers[1], LayerEstimate)
    assert back.cycles == 2 * e.cycles and back.cycles_per_token == t.cycles_per_token
    assert back.utilisation.array_kp == pytest.approx(e.utilisation.array_kp)
    assert main(["estimate", "--layer", "120x60", "--ratio", "8", "--config", "minimal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"cycles", "interval_cycles", "latency_cycles", "utilisation", "layers", "config"} <= set(out)
    assert 0 < out["utilisation"]["array_kp"] <= 1 and 0 < out["utilisation"]["lanes"] <= 1
    assert out["interval_cycles"] == out["layers"][0]["interval_cycles"]


def test_flagship_preset_is_balanced_on_the_flagship_layer():
    """The ``flagship`` preset (the DSE's balanced point for 2600x1300 @25x at the rule shapes)
    streams that layer within 1.10x of its resource bound, its binding unit (the lanes) >= 90 %
    busy, and 4x faster than the ``default`` W = 1, B = 1 design; it refuses what needs W = 1."""
    from doping.synth import flagship_layers, synth_method

    (_, rule), _, (_, pruned) = flagship_layers()
    flag = PRESETS["flagship"]
    r = estimate(rule, flag)
    # the preset's capacities hold the layer in the memories the DSE priced (buffers fitted)
    assert flag.sram_bits() == fit_config(flag, rule).sram_bits()
    assert r.interval_cycles <= 1.10 * r.bound
    assert r.utilisation.interval["GATHER"] >= 0.9 and r.utilisation.interval["GATHER"] == max(
        r.utilisation.interval.values())
    assert estimate(rule, PRESETS["default"]).interval_cycles >= 4 * r.interval_cycles
    p = estimate(pruned, flag)
    assert p.interval_cycles <= 1.10 * p.bound
    (dense,) = synth_method("dense", (64, 40), 1)  # B = [1]: n2 = 1, so W = 1 only
    assert flag.stream_problems(dense) and not PRESETS["default"].stream_problems(dense)


@pytest.mark.slow
def test_dse_balanced_point_is_the_flagship_preset(tmp_path):
    """The preset is what ``doping dse`` proposes among square arrays for the flagship rule layer
    (a drift in the cycle, area or energy model moves the DSE's point and shows here); the
    non-square search keeps its interval on a 10x16 array (docs/results.md). 1.5-4 min on 2 cores."""
    from doping.estimate.dse import dse
    from doping.synth import flagship_layers

    r = dse(flagship_layers()[0][1], PRESETS["default"], tmp_path)
    got = r.square_balanced
    assert r.balanced.interval_cycles == got.interval_cycles
    assert r.balanced.area_mm2 <= got.area_mm2
    flag = PRESETS["flagship"]
    assert got.design == {
        "rows": flag.rows, "cols": flag.cols, "lanes": flag.lanes, "stream_bytes": flag.stream_bytes,
        "batch": flag.batch}
