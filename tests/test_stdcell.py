"""The standard-cell flow (doping.ppa): SRAM macros read from their Liberty files, memories tiled
from them, yosys mapping to a real cell library and OpenSTA timing and power."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from doping.ppa.macros import Macro, implement
from doping.ppa.stdcell import libraries, parse_path, resolve_library, synthesize, timing

PDK = Path(__file__).resolve().parent.parent / "python" / "doping" / "ppa" / "pdk"


def test_macro_figures_come_from_the_liberty_files():
    m = Macro.from_liberty(PDK / "fakeram45_64x32.lib.gz")
    assert (m.words, m.bits, m.area_um2) == (64, 32, 3888.122)
    assert m.access_ns == pytest.approx(0.213) and m.setup_ns == pytest.approx(0.05)
    assert m.energy_pj == pytest.approx(1.69662)  # 1696.62 in fF x V^2
    assert m.leakage_uw == pytest.approx(169.765) and not m.two_port and m.read_edge == "rising"
    o = Macro.from_liberty(PDK / "sky130_sram_2kbyte_1rw1r_32x512_8_TT_1p8V_25C.lib.gz")
    assert (o.words, o.bits, o.area_um2) == (512, 32, 284538.474)
    assert o.two_port and o.read_edge == "falling" and o.access_ns == pytest.approx(0.529)
    assert o.energy_pj == pytest.approx(13.8084) and o.leakage_uw == pytest.approx(17.726)


def test_tiling_counts_spares_and_keeps_tiny_memories_in_flops():
    lib = [Macro.from_liberty(p) for p in libraries()["nangate45"].srams]
    big = implement("overlay", 2048, 22, lib, 1.5 * 4.522)
    assert big.macro is not None
    assert big.count * big.macro.words * big.macro.bits == 2048 * 22 + big.spare_bits
    assert big.area_um2 == min(-(-2048 // m.words) * -(-22 // m.bits) * m.area_um2 for m in lib)
    tiny = implement("row_map", 16, 7, lib, 1.5 * 4.522)  # 112 bits of flops < the smallest macro
    assert tiny.macro is None and tiny.area_um2 == 0.0


LONG = textwrap.dedent("""\
    module chain(input clk, input [15:0] a, input [15:0] b, output reg [31:0] slow, output reg [15:0] fast);
      reg [15:0] ra, rb;
      always @(posedge clk) begin
        ra <= a; rb <= b;
        fast <= ra ^ rb;
        slow <= (ra * rb) * (ra + rb);
      end
    endmodule
""")


def test_sta_finds_the_lengthened_path_and_the_slack_sign(tmp_path):
    """A register fed by two chained multipliers beside one fed by an XOR: the multiplier path is
    critical; it meets a slow clock and fails a fast one."""
    src = tmp_path / "chain.v"
    src.write_text(LONG)
    r = synthesize(src, "chain", resolve_library("sky130"), 20.0, tmp_path / "out")
    assert r.worst_slack_ns > 0
    assert r.critical_path["end_register"].startswith("slow[")
    assert r.critical_path["start_register"].startswith(("ra[", "rb["))
    assert r.critical_path["levels"] > 10
    assert r.cell_area_um2 > 0 and r.sram_area_um2 == 0
    delay = r.clock_ns - r.worst_slack_ns
    slack, path, _ = timing(tmp_path / "out", "chain", delay / 2)
    assert slack < 0 and path["end"] == r.critical_path["end"]
    assert r.fmax_mhz == pytest.approx(1e3 / delay)


def test_report_parsers_reject_empty_reports():
    from doping.errors import DopingError

    with pytest.raises(DopingError):
        parse_path("nothing here")


MACRO = textwrap.dedent("""\
    module ram(input clk, input we, input [10:0] wa, input [10:0] ra, input [21:0] wd, input [7:0] k,
               output reg [29:0] y);
      reg [21:0] mem [0:2047];
      reg [21:0] q;
      always @(posedge clk) begin
        if (we) mem[wa] <= wd;
        q <= mem[ra];
        y <= q * k;
      end
    endmodule
""")


def test_a_memory_becomes_sram_macros_with_their_timing_and_power(tmp_path):
    """The flow's steps on a small module: a 2048 x 22 memory tiled from the sky130 OpenRAM macro
    (a black box with the macro's area, access time and setup), the multiplier after its read
    port in the timing, SRAM power from the access rate, the power report at the given activity."""
    src = tmp_path / "ram.v"
    src.write_text(MACRO)
    r = synthesize(src, "ram", resolve_library("sky130"), 20.0, tmp_path / "out", activity=0.2,
                   sram_accesses_per_cycle={"mem": 1.0})
    macros = [m for m in r.memories if m["macro"] != "flip-flops"]
    assert len(macros) == 1 and macros[0]["words"] == 2048 and macros[0]["bits"] == 22
    assert macros[0]["access_ns"] > 0 and r.sram_area_um2 > 0 and r.cell_area_um2 > 0
    assert r.power_mw["sram"] > 0 and all(v >= 0 for v in r.power_mw.values())
    assert r.worst_slack_ns > 0 and r.activity == 0.2
    # the read data leaves the macro at its access time: a path out of it is timed from there
    assert r.critical_path["levels"] > 3


def test_vcd_activity_counts_toggles_per_bit_and_cycle(tmp_path):
    """Two 1-bit signals and a 4-bit bus over 4 rising clock edges: toggles / (bits x cycles)."""
    from doping.ppa.activity import vcd_activity

    vcd = tmp_path / "t.vcd"
    vcd.write_text("$timescale 1ns $end\n$scope module top $end\n$var wire 1 ! clk $end\n"
                   "$var wire 1 \" a $end\n$var wire 1 # b $end\n$var wire 4 $ bus $end\n$upscope $end\n"
                   "$enddefinitions $end\n#0\n0!\n0\"\n0#\nb0000 $\n#5\n1!\n1\"\n#10\n0!\n#15\n1!\n"
                   "b0011 $\n#20\n0!\n#25\n1!\n0\"\n#30\n0!\n#35\n1!\nb0010 $\n")
    a = vcd_activity(vcd)
    # toggles: a 2, b 0, bus 2 + 1 = 3 -> 5 over 6 bits and 4 cycles
    assert (a.cycles, a.bits) == (4, 6) and a.toggles_per_bit_cycle == pytest.approx(5 / 24)
    # the last two cycles (after the second edge): bus 2 at #15, a 1 at #25, bus 1 at #35
    w = vcd_activity(vcd, last_cycles=2)
    assert w.cycles == 2 and w.toggles_per_bit_cycle == pytest.approx(4 / 12)
    with pytest.raises(Exception, match="no clock"):
        vcd_activity(vcd, clock="nope")


@pytest.mark.slow
def test_minimal_config_on_sky130_from_the_cli(tmp_path):
    """`doping synth --config minimal --liberty sky130 --pack P --json`: the keys, activity from the
    pack's simulation, slack signs at two clocks
    on one netlist, SRAM macros' access time in the timing model, area within 2x of the estimator
    in the library (the estimator's logic in the library's gates, memories tiled as the flow tiles
    them)."""
    from doping.pack import write_pack
    from doping.synth import synth_layer

    pack = write_pack(tmp_path / "p.dpack", [synth_layer((48, 40), 6, factor_shapes=((8, 8), (6, 5)))])
    out = tmp_path / "synth"
    r = subprocess.run([sys.executable, "-m", "doping.cli", "synth", "--config", "minimal", "--liberty", "sky130",
                        "--clock-ns", "20", "--pack", str(pack), "--vectors", "4", "--json", "-o", str(out)],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    for key in ("liberty", "clock_ns", "worst_slack_ns", "fmax_mhz", "critical_path", "cell_area_um2",
                "sram_area_um2", "area_mm2", "power_mw"):
        assert key in rep
    assert set(rep["power_mw"]) >= {"internal", "switching", "leakage", "sram"}
    assert rep["liberty"] == "sky130" and rep["worst_slack_ns"] > 0
    assert all(v >= 0 for v in rep["power_mw"].values()) and rep["power_mw"]["sram"] > 0
    # the power report runs at the activity the pack's simulation measured
    assert rep["activity_source"].startswith("Verilator VCD of p.dpack") and 0 < rep["activity"] < 0.5
    macros = [m for m in rep["memories"] if m["macro"] != "flip-flops"]
    assert macros and all(m["access_ns"] > 0 for m in macros)
    slack, _, _ = timing(out / "stdcell_sky130", "doping_accel", 0.5 * 1e3 / rep["fmax_mhz"])
    assert slack < 0
    from doping.config import PRESETS
    from doping.ppa.stdcell import library_area_um2

    est = library_area_um2(PRESETS["minimal"], resolve_library("sky130"))
    assert est["sram_um2"] == pytest.approx(rep["sram_area_um2"])  # the same tiling, bank by bank
    assert 0.5 < rep["cell_area_um2"] / est["cell_um2"] < 2.0
    assert 0.5 < rep["area_mm2"] / est["area_mm2"] < 2.0


HIER = textwrap.dedent("""\
    module inner(input clk, input [15:0] a, input [15:0] b, output reg [31:0] p);
      reg [15:0] ra, rb;
      always @(posedge clk) begin ra <= a; rb <= b; p <= (ra * rb) * (ra + rb); end
    endmodule
    module outer(input clk, input [15:0] a, input [15:0] b, output [31:0] p);
      inner u(.clk(clk), .a(a), .b(b), .p(p));
    endmodule
""")


def test_hierarchical_flow_times_through_modules_and_names_registers_in_scope(tmp_path):
    """Per-module mapping: the path inside the submodule is found and its registers are named
    with their instance path; the area equals the flat flow's within a few per cent."""
    src = tmp_path / "h.v"
    src.write_text(HIER)
    lib = resolve_library("sky130")
    h = synthesize(src, "outer", lib, 20.0, tmp_path / "h", hierarchical=True)
    f = synthesize(src, "outer", lib, 20.0, tmp_path / "f")
    assert h.critical_path["end_register"].startswith("u/p[")
    assert h.critical_path["start_register"].startswith(("u/ra[", "u/rb["))
    assert f.critical_path["end_register"].startswith(("u.p[", "p["))
    assert 0.9 < h.cell_area_um2 / f.cell_area_um2 < 1.1 and "hierarchical" in h.tool


# `doping synth --config minimal --liberty sky130 --clock-ns 10 --json` as a user runs it (keys, slack
# signs at two clocks, the path named, area near the estimator): tests/test_readme.py runs it as the
# README tour's line.


def test_eda_timeout_from_the_environment(monkeypatch):
    """Long flows raise the per-step limit with DOPING_EDA_TIMEOUT_S; a bad value is one clear error."""
    from doping.errors import DopingError
    from doping.ppa.stdcell import EDA_TIMEOUT_S, eda_timeout_s

    monkeypatch.delenv("DOPING_EDA_TIMEOUT_S", raising=False)
    assert eda_timeout_s() == EDA_TIMEOUT_S
    monkeypatch.setenv("DOPING_EDA_TIMEOUT_S", "10800")
    assert eda_timeout_s() == 10800
    for bad in ("soon", "-5", "0", "inf", "nan"):
        monkeypatch.setenv("DOPING_EDA_TIMEOUT_S", bad)
        with pytest.raises(DopingError, match="DOPING_EDA_TIMEOUT_S must be a positive number"):
            eda_timeout_s()
