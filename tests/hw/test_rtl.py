"""Verilog generation: deterministic, no machine paths, manifest matches the config, lint-clean."""

from __future__ import annotations

import json

import pytest

from doping.cli import main
from doping.config import PRESETS, AccelConfig, load_config
from doping.errors import DopingError
from doping.hw.tools import lint
from doping.hw.verilog import generate


LINT_CONFIGS = {**PRESETS, "wide-w8": AccelConfig(rows=2, cols=8, lanes=8, stream_bytes=8, max_m=64, max_n=64,
                                                 max_factor=64, max_intermediate=64, max_nnz=1024),
                "batch-b8": AccelConfig(rows=2, cols=3, lanes=4, stream_bytes=2, batch=8, max_m=64, max_n=64,
                                        max_factor=64, max_intermediate=64, max_nnz=1024)}


# the large and flagship presets' lint alone takes minutes on 2 cores: make test-slow
@pytest.mark.parametrize("preset", ["minimal", "default", pytest.param("large", marks=pytest.mark.slow),
                                    pytest.param("flagship", marks=pytest.mark.slow), "wide-w8", "batch-b8"])
def test_generated_verilog_lints_clean(tmp_path, preset):
    cfg = LINT_CONFIGS[preset]
    man = generate(cfg, tmp_path)
    v = tmp_path / man["files"][0]
    lint(v)  # raises on any warning beyond hw/lint_waivers.vlt
    text = v.read_text()
    assert "/work" not in text and "/home" not in text and "/tmp" not in text
    assert man["config"] == cfg.as_dict()
    assert man["sram_bits_total"] == sum(cfg.sram_bits().values())
    names = {p["name"] for p in man["ports"]}
    assert {"clk", "rst", "load__payload", "x__valid", "y__ready", "status", "vector_cycles"} <= names
    for p in man["ports"]:
        assert f" {p['name']}" in text or f"{p['name']};" in text


def test_generation_is_deterministic(tmp_path):
    cfg = PRESETS["minimal"]
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    for f in ("doping_accel.v", "manifest.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_config_files_and_errors(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("rows = 3\ncols = 5\nlanes = 4\nstream_bytes = 2\nbatch = 4\n")
    assert load_config(str(f)) == AccelConfig(rows=3, cols=5, lanes=4, stream_bytes=2, batch=4)
    (tmp_path / "bad.json").write_text('{"rows": 4, "colz": 2}')
    with pytest.raises(DopingError, match="unknown fields colz"):
        load_config(str(tmp_path / "bad.json"))
    with pytest.raises(DopingError, match="rows must be an integer in 1.."):
        AccelConfig(rows=0)
    with pytest.raises(DopingError, match="neither a preset"):
        load_config("nope")


def test_rtl_cli_refuses_a_pack_that_does_not_fit(tmp_path, capsys):
    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--shape", "260x130", "--ratio", "10", "-o", str(pack)]) == 0
    assert main(["rtl", "--config", "minimal", "--pack", str(pack), "-o", str(tmp_path / "rtl")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the accelerator config: outputs m 260 > 64" in err
    assert not (tmp_path / "rtl").exists()
    assert main(["rtl", "--config", "minimal", "-o", str(tmp_path / "ok")]) == 0
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["top"] == "doping_accel"
