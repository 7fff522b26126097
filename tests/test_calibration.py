"""The estimator's clock and area calibrated against the standard-cell flow (issue 27): the fit is
the recorded flow rows' fit, memories are tiled as the flow tiles them, and on configs the fit did
not see the estimator stays within the stated error of the flow."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from doping.config import PRESETS
from doping.estimate import calibration
from doping.estimate.model import area_mm2, fmax_estimate_mhz, rule_fmax_mhz
from doping.estimate.calibration import silicon_basis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from calibrate import estimator_power_mw, fit, fit_power, flow_rows, power_rows, power_terms  # noqa: E402
from stdcell_ppa import config_from_spec  # noqa: E402

ROWS = flow_rows(ROOT / "docs" / "stdcell_ppa.json")
#: the largest estimator error on held-out configs that docs/calibration.md states (%): area within
#: the issue's 10 %; the clock within 10 % at Nangate45 but 13.7 % at sky130 (one critical path per
#: library: the held-out sky130 designs time at 74-78 MHz, the fit ones at 84-85)
HELD_OUT_AREA_PCT = 10.0
HELD_OUT_FMAX_PCT = {"nangate45": 10.0, "sky130": 15.0}
#: total power on held-out configs, the issue's bound
HELD_OUT_POWER_PCT = 20.0
POWER_ROWS = power_rows(ROWS)


def test_calibration_json_is_the_fit_of_the_recorded_flow_rows():
    """Re-fitting docs/stdcell_ppa.json gives calibration.json: no hand-edited constant."""
    cals = calibration.calibrations()
    assert {"nangate45", "sky130"} <= set(cals)
    for name, cal in cals.items():
        again = fit(ROWS, list(cal.fit_configs), cal, cal.command)
        assert again.period_ns == pytest.approx(cal.period_ns, abs=1e-4), name
        assert again.logic_scale == pytest.approx(cal.logic_scale, abs=1e-4), name
        assert all((calibration.PDK / s).is_file() for s in cal.srams)


def test_memories_are_tiled_from_the_library_macros_as_the_flow_tiles_them():
    for r in ROWS:
        if r["config"] not in ("minimal", "default"):
            continue
        cfg = replace(config_from_spec(r["config"]), tech_nm=r["node_nm"])
        cal, scale = calibration.for_node(cfg.tech_nm)
        assert cal.library == r["library"] and scale == 1.0
        est = area_mm2(cfg)
        flow_macro_um2 = r["flow"]["sram_area_um2"]
        est_macro_um2 = sum(v for k, v in est.items() if k.startswith("sram_")) * 1e6
        # the estimator's memory parts = the flow's macros + the flip-flop memories (cells)
        assert est_macro_um2 >= flow_macro_um2 * 0.999


def test_each_library_has_three_held_out_configs():
    for name, cal in calibration.calibrations().items():
        held = {r["config"] for r in ROWS if r["library"] == name and r["config"] not in cal.fit_configs}
        assert len(held) >= 3, (name, held)


@pytest.mark.parametrize("row", [r for r in ROWS if r["config"] not in
                                 calibration.calibrations()[r["library"]].fit_configs],
                         ids=lambda r: f"{r['library']}-{r['config'][:40]}")
def test_held_out_configs_within_the_stated_error(row):
    cfg = replace(config_from_spec(row["config"]), tech_nm=row["node_nm"])
    area = sum(area_mm2(cfg).values())
    assert abs(area / row["flow"]["area_mm2"] - 1) * 100 <= HELD_OUT_AREA_PCT
    assert abs(fmax_estimate_mhz(cfg) / row["flow"]["fmax_mhz"] - 1) * 100 <= HELD_OUT_FMAX_PCT[row["library"]]


def test_clock_comes_from_the_calibration_and_names_its_library():
    cfg = PRESETS["default"]
    n45 = calibration.calibrations()["nangate45"]
    assert fmax_estimate_mhz(cfg) == pytest.approx(1e3 / n45.period_ns)
    assert fmax_estimate_mhz(cfg) < rule_fmax_mhz(cfg)  # the gate-level rule is an upper bound
    basis = silicon_basis(45)
    assert "nangate45" in basis and n45.corner in basis
    sky = calibration.calibrations()["sky130"]
    assert sky.corner in silicon_basis(130)
    # a node without a reference library: the nearest one's, scaled by the node ratio
    at90 = replace(cfg, tech_nm=90)
    near, scale = calibration.for_node(90)
    assert fmax_estimate_mhz(at90) == pytest.approx(1e3 / (near.period_ns * scale))
    assert "scaled from" in silicon_basis(90)


def test_estimate_json_names_the_library(tmp_path):
    import subprocess

    from doping.pack import write_pack
    from doping.synth import synth_layer

    pack = write_pack(tmp_path / "p.dpack", [synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))])
    r = subprocess.run([sys.executable, "-m", "doping.cli", "estimate", str(pack), "--config", "default", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "nangate45" in out["silicon_basis"] and "typical" in out["silicon_basis"]


def test_power_terms_are_the_fit_of_the_recorded_power_rows():
    cals = calibration.calibrations()
    assert all(cal.has_power for cal in cals.values())
    for name, cal in cals.items():
        again = fit_power(POWER_ROWS, list(cal.power_fit_configs), cal)
        for field in ("flop_memory_pj_per_um2", "logic_pj_per_um2", "leak_uw_per_um2"):
            assert getattr(again, field) == pytest.approx(getattr(cal, field), rel=1e-3), (name, field)


def test_sram_power_is_the_macros_at_the_estimators_access_counts():
    """The flow prices the macros at the cycle model's access rates, the estimator at its access
    counts per vector: the same energy, to rounding."""
    assert len(POWER_ROWS) >= 8
    for r in POWER_ROWS:
        t = power_terms(r)
        assert t["macro_pj"] == pytest.approx(t["flow_sram_pj"], rel=0.01), r["config"]


@pytest.mark.parametrize("row", [r for r in POWER_ROWS if r["config"] not in
                                 calibration.calibrations()[r["library"]].power_fit_configs],
                         ids=lambda r: f"{r['library']}-{r['config'][:40]}")
def test_held_out_power_within_the_stated_error(row):
    est = estimator_power_mw(row)
    assert abs(est["total"] / row["flow"]["power_mw"]["total"] - 1) * 100 <= HELD_OUT_POWER_PCT


def test_each_library_has_three_held_out_power_configs():
    for name, cal in calibration.calibrations().items():
        held = {r["config"] for r in POWER_ROWS if r["library"] == name and r["config"] not in cal.power_fit_configs}
        assert len(held) >= 3, (name, held)


def test_calibrated_energy_has_the_flows_parts_and_says_so():
    from doping.estimate.model import estimate
    from doping.synth import synth_layer

    e = estimate(synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5))), PRESETS["minimal"])
    parts = e.breakdown.energy_pj
    assert parts["cells_clock"] > 0 and parts["leakage"] > 0 and parts["array_macs"] > 0
    assert e.power_mw == pytest.approx(e.energy_pj * 1e-12 / (e.interval_cycles / (e.clock_mhz * 1e6)) * 1e3)
    assert "energy and power calibrated" in silicon_basis(45)
