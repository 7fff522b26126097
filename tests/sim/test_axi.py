"""The AXI4-Stream IP (``doping.hw.axi``): a third-party bench (cocotbext-axi) against the golden
model under pauses and a mid-vector reset; the bench fails on a wrong design; no ready or valid
output depends combinationally on a ready or valid input; the FuseSoC core file and lint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from doping.cli import main
from doping.config import PRESETS, AccelConfig
from doping.pack import write_pack
from doping.sim.runner import run_axi
from doping.synth import synth_layer

# 4 elements a beat and batches of 4: a vector of m = 30 ends in a half-full beat (tkeep 0b0011)
AXI_CFG = AccelConfig(rows=1, cols=5, lanes=4, stream_bytes=4, batch=4, max_m=80, max_n=64, max_factor=256,
                      max_intermediate=512, max_nnz=8192)


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    d = tmp_path_factory.mktemp("axi")
    out = []
    for k, (shape, ratio) in enumerate((((30, 24), 4), ((64, 40), 6))):
        p = d / f"p{k}.dpack"
        write_pack(p, [synth_layer(shape, ratio, seed=k)])
        out.append(str(p))
    return out


def test_axi_ip_matches_golden_under_pauses_and_reset(packs):
    r = run_axi(packs, AXI_CFG, vectors=8, seed=3, x_gap=0.3, y_stall=0.4, load_gap=0.2, reset_mid_vector=True)
    assert (r.vectors, r.mismatches, r.err_x_tlast) == (16, 0, 0) and r.cocotb == {"tests": 1, "failed": 0}
    assert r.stalled_beats_checked > 50 and r.stream_rule_violations == []


def test_axi_bench_catches_a_wrong_design(packs):
    r = run_axi(packs[:1], AXI_CFG, vectors=4, mutation="round_down")
    assert r.mismatches > 0 and r.cocotb["failed"] == 1 and r.mismatch_examples


def test_ready_and_valid_outputs_are_registered():
    """Over a real load and vectors, flipping any tready or tvalid input within a cycle changes no
    tready or tvalid output (AXI4-Stream: valid must not wait for ready; here ready does not wait
    for valid either, and m_axis_y_tready fans out to one FIFO only)."""
    from amaranth.sim import Simulator

    from doping.arch import pack_load_word
    from doping.hw.axi import AxiStreamAccelerator
    from doping.hw.loader import load_words

    cfg = PRESETS["minimal"]
    layer = synth_layer((30, 24), 4, seed=0)
    words = [pack_load_word(*w) for w in load_words(layer, cfg)]
    dut = AxiStreamAccelerator(cfg)
    rng = np.random.default_rng(0)
    inputs = (dut.s_axis_load_tvalid, dut.s_axis_x_tvalid, dut.m_axis_y_tready)
    outputs = (dut.s_axis_load_tready, dut.s_axis_x_tready, dut.m_axis_y_tvalid, dut.m_axis_y_tdata)
    seen = {"y": 0, "flips": 0}

    async def bench(ctx):
        async def tick():
            ctx.set(dut.aclk, 1)
            ctx.set(dut.aclk, 0)

        ctx.set(dut.aresetn, 0)
        await tick()
        ctx.set(dut.aresetn, 1)
        w = 0
        for _ in range(600):
            ctx.set(dut.s_axis_load_tdata, words[w] if w < len(words) else 0)
            ctx.set(dut.s_axis_x_tdata, int(rng.integers(0, 256)))
            for sig in inputs:  # each input both ways, the others random: no output may move
                for other in inputs:
                    ctx.set(other, int(rng.integers(0, 2)))
                before = [ctx.get(o) for o in outputs]
                ctx.set(sig, 1 - ctx.get(sig))
                assert [ctx.get(o) for o in outputs] == before, f"{sig.name} reaches an output combinationally"
                seen["flips"] += 1
            ctx.set(dut.s_axis_load_tvalid, int(w < len(words)))
            ctx.set(dut.s_axis_x_tvalid, int(w >= len(words)))
            w += ctx.get(dut.s_axis_load_tvalid) and ctx.get(dut.s_axis_load_tready)
            seen["y"] += ctx.get(dut.m_axis_y_tvalid) and ctx.get(dut.m_axis_y_tready)
            await tick()

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen["y"] > 0 and seen["flips"] == 1800  # the design ran: outputs came out


def test_rtl_axi_writes_a_core_file_fusesoc_lints(tmp_path, capsys):
    """``doping rtl --axi``: the IP's ports in the manifest, and a CAPI2 core that FuseSoC reads and
    lints through edalize with Verilator, warning-free."""
    from doping.hw.tools import verilator_env

    assert main(["rtl", "--config", "minimal", "--axi", "--lint", "-o", str(tmp_path)]) == 0
    man = json.loads((tmp_path / "manifest.json").read_text())
    ip = man["ip"]
    assert ip["top"] == "doping_accel_axi" and ip["ports"][:2] == [{"name": "aclk", "dir": "in", "width": 1},
                                                                 {"name": "aresetn", "dir": "in", "width": 1}]
    names = {p["name"] for p in ip["ports"]}
    assert {"s_axis_x_tlast", "m_axis_y_tkeep", "s_axis_load_tdata"} <= names and "clk" not in names
    assert next(p for p in ip["ports"] if p["name"] == "s_axis_load_tdata")["width"] % 8 == 0
    assert all((tmp_path / f).is_file() for f in ip["registers"]) and "doping_csr.h" in ip["registers"]
    core = (tmp_path / ip["core_file"]).read_text()
    vlnv = core.split("\nname: ")[1].split()[0]
    fusesoc = [sys.executable, "-m", "fusesoc.main", "--cores-root", str(tmp_path)]
    r = subprocess.run([*fusesoc, "core-info", vlnv], capture_output=True, text=True)
    assert r.returncode == 0 and "lint" in r.stdout, r.stderr
    r = subprocess.run([*fusesoc, "run", "--build-root", str(tmp_path / "fusesoc"), "--target", "lint", vlnv],
                       capture_output=True, text=True, env=verilator_env(), cwd=tmp_path)
    assert r.returncode == 0 and "%Warning" not in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]


def test_readme_instantiation_compiles_against_the_ip(tmp_path):
    """The README's instantiation example, verbatim, inside a module declaring its nets (W = 1:
    the default preset), lints clean against the generated IP."""
    from pathlib import Path

    from doping.hw.tools import WAIVERS, verilator_env

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```verilog\n")[1].split("```")[0]
    assert main(["rtl", "--config", "minimal", "--axi", "-o", str(tmp_path)]) == 0
    nets = ("  input clk, rst_n, ld_valid, ld_last, x_valid, x_last, y_ready,\n  input [95:0] ld_data,\n"
            "  input [7:0] x_data,\n  output ld_ready, x_ready, y_valid, y_last, y_keep, x_err, ld_err,\n"
            "  output [7:0] y_data,\n  output [3:0] busy,\n  output [31:0] lat,\n"
            "  input [11:0] aw_addr, ar_addr,\n  input [31:0] w_data,\n  input aw_valid, w_valid, ar_valid,\n"
            "  output aw_ready, w_ready, b_valid, ar_ready, r_valid,\n  output [1:0] b_resp, r_resp,\n"
            "  output [31:0] r_data")
    (tmp_path / "soc.v").write_text(f"module soc(\n{nets});\n{example}endmodule\n")
    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", str(WAIVERS), "--top-module", "soc",
                        str(tmp_path / "doping_accel_axi.v"), str(tmp_path / "soc.v")],
                       capture_output=True, text=True, env=verilator_env())
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]


@pytest.mark.slow
def test_axi_flagship_long_stalled_run(tmp_path):
    """The flagship preset as AXI IP on its rule layer: a stalled run of >= 10,000 cycles with no
    AXI4-Stream rule broken and every output right (8 vectors: 7,849 cycles, 560 s of simulation
    after a build of minutes; 16 here)."""
    from doping.synth import flagship_layers

    pack = tmp_path / "flag.dpack"
    write_pack(pack, [flagship_layers()[0][1]])
    r = run_axi([str(pack)], PRESETS["flagship"], vectors=16, x_gap=0.2, y_stall=0.5, load_gap=0.1)
    assert r.mismatches == 0 and r.stream_rule_violations == [] and r.cycles >= 10_000
