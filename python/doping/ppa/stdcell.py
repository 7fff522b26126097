"""The standard-cell flow: generated Verilog -> yosys (cells of a real Liberty library, memories
as SRAM macros) -> OpenSTA (worst slack and critical path at a clock, power).

Steps, each in a scratch folder holding only fixed file names (no user path is ever parsed as a
yosys or Tcl command):

1. ``coarse``: yosys ``synth -flatten -run begin:fine`` — memories as ``$mem_v2`` cells.
2. Each memory is built from the library's SRAM macros or kept in flip-flops
   (``macros.implement``: the smaller area); a macro-built memory becomes a black-box cell whose
   Liberty model (``macros.wrapper_liberty``) carries the macros' area, access time and setup.
3. ``map``: yosys ``memory_map`` (the flip-flop memories), ``dfflibmap`` and
   ``abc -liberty -D <period> -constr`` (abc buffers and sizes for the clock), ``stat -liberty``.
4. OpenSTA: one clock on ``clk`` at the period, inputs and outputs at 0 ns external delay, worst
   slack, the critical path, and ``report_power`` at a switching activity per net and clock.

Units: ns, MHz, um^2, mW.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from doping.errors import DopingError
from doping.ppa.macros import FLOPS_PER_MEMORY_BIT, Macro, MemoryImpl, implement, read_liberty_text, wrapper_liberty

PDK = Path(__file__).with_name("pdk")
#: Third-party libraries the project does not ship (licence): found beside the checkout.
SHARED_PDK = Path(os.environ.get("DOPING_PDK", Path(__file__).resolve().parents[3] / ".." / "shared" / "pdk"))
OSU018 = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")


@dataclass(frozen=True)
class Library:
    """A standard-cell library and the SRAM macros that go with it."""

    name: str
    cells: Path
    srams: tuple[Path, ...]
    node_nm: int
    corner: str
    install: str = ""  # how to get it when missing
    target_ns: float = 5.0  # abc's default delay target: near what the generated designs reach here


def libraries() -> dict[str, Library]:
    fakeram = tuple(sorted(PDK.glob("fakeram45_*.lib.gz")))
    return {
        "sky130": Library("sky130", PDK / "sky130hd_tt.lib.gz",
                          (PDK / "sky130_sram_2kbyte_1rw1r_32x512_8_TT_1p8V_25C.lib.gz",), 130,
                          "sky130_fd_sc_hd tt, 1.8 V, 25 C", target_ns=10.0),
        "nangate45": Library("nangate45", SHARED_PDK / "nangate45_typ.lib.gz", fakeram, 45,
                             "Nangate45 typical, 1.1 V, 25 C",
                             "not shipped (its licence): set DOPING_PDK to a folder holding nangate45_typ.lib.gz",
                             target_ns=3.0),
        "osu018": Library("osu018", OSU018, (), 180, "OSU 0.18 um typical, 1.8 V, 25 C",
                          "sudo apt-get install -y qflow-tech-osu018", target_ns=10.0),
    }


def resolve_library(spec: str, sram_libs: list[str] | None = None) -> Library:
    """A library by name (``libraries()``) or a Liberty path; ``sram_libs`` replace its macros."""
    known = libraries()
    if spec in known:
        lib = known[spec]
        if not lib.cells.is_file():
            raise DopingError(f"library {spec}: {lib.cells} is missing; {lib.install}")
    else:
        path = Path(spec)
        if not path.is_file():
            raise DopingError(f"--liberty {spec!r} is neither a known library ({', '.join(known)}) nor a file")
        lib = Library(path.name, path, (), 0, "as the file states")
    if sram_libs is not None:
        for s in sram_libs:
            if not Path(s).is_file():
                raise DopingError(f"--sram-lib {s} is not a file")
        lib = replace(lib, srams=tuple(Path(s) for s in sram_libs))
    return lib


@dataclass
class CellInfo:
    """What the flow needs of a cell library: the cap unit, a small buffer to drive inputs, a
    flip-flop's and a two-input NAND's area (um^2)."""

    cap_unit_pf: float
    buffer: str
    flop_um2: float
    nand2_um2: float

    @property
    def flop_memory_um2_per_bit(self) -> float:
        """A bit of a flip-flop memory: its register and its share of the read mux."""
        return FLOPS_PER_MEMORY_BIT * self.flop_um2


def cell_info(text: str) -> CellInfo:
    cap = re.search(r"capacitive_load_unit\s*\(\s*([\d.]+)\s*,\s*\"?(\w+)", text)
    cap_pf = float(cap.group(1)) * {"pf": 1.0, "ff": 1e-3}.get(cap.group(2).lower(), 1.0) if cap else 1.0
    starts = [m for m in re.finditer(r'\bcell\s*\(\s*"?([\w$]+)"?\s*\)\s*\{', text)]
    buf, flop, nand2 = None, None, None
    for i, m in enumerate(starts):
        body = text[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        area = re.search(r"\barea\s*:\s*([\d.]+)", body)
        if not area or "dont_use : true" in body:
            continue
        a, name = float(area.group(1)), m.group(1)
        if re.search(r"\bff\s*\(", body) and (flop is None or a < flop[1]):
            flop = (name, a)
        low = name.lower()
        if re.search(r"(^|_)nand2(_?x?1)?$", low) and (nand2 is None or a < nand2):
            nand2 = a
        if re.search(r"buf", low) and not re.search(r"clk|dly|lp|probe|tbuf|ebuf|einv", low) \
                and len(re.findall(r"\bpin\s*\(", body)) == 2 and (buf is None or a < buf[1]):
            buf = (name, a)
    if buf is None or flop is None or nand2 is None:
        raise DopingError("the cell library has no buffer, no flip-flop or no two-input NAND cell")
    return CellInfo(cap_pf, buf[0], flop[1], nand2)


def library_area_um2(cfg, lib: Library) -> dict:
    """The fast estimate of a design's area in ``lib``, without synthesis: the estimator's logic
    (fitted in NanGate45 gate equivalents, 0.798 um^2 a NAND2) counted in the library's NAND2, and
    every memory bank built as the flow builds it (``macros.implement``: macros, or flip-flops at
    ``FLOPS_PER_MEMORY_BIT`` flip-flops a bit)."""
    from doping.estimate.calibration import logic_in_library_um2, memory_parts_um2
    from doping.estimate.model import logic_area_um2

    info = cell_info(read_liberty_text(lib.cells))
    parts = memory_parts_um2(cfg, tuple(Macro.from_liberty(p) for p in lib.srams), info.flop_um2)
    logic = logic_in_library_um2(logic_area_um2(cfg), info.nand2_um2)
    flops = sum(a for a, macro in parts.values() if not macro)
    sram = sum(a for a, macro in parts.values() if macro)
    return {"logic_um2": logic, "flop_memory_um2": flops, "cell_um2": logic + flops, "sram_um2": sram,
            "area_mm2": (logic + flops + sram) * 1e-6}


@dataclass
class MemoryCell:
    """One ``$mem_v2`` of the coarse netlist."""

    name: str
    size: int
    width: int
    abits: int
    simple: bool  # one synchronous read port and one write port


def parse_memories(dump: str) -> list[MemoryCell]:
    out = []
    for block in re.split(r"\n\s*cell \$mem_v2 ", "\n" + dump)[1:]:
        name = block.split("\n", 1)[0].strip()
        params = dict(re.findall(r"parameter \\(\w+) (\S+)", block))
        num = lambda k: int(params[k]) if re.fullmatch(r"-?\d+", params.get(k, "")) else -1  # noqa: E731
        simple = num("RD_PORTS") == 1 and num("WR_PORTS") == 1 and params.get("RD_CLK_ENABLE") == "1'1"
        out.append(MemoryCell(name, num("SIZE"), num("WIDTH"), num("ABITS"), simple))
    return out


@dataclass
class PathCell:
    instance: str
    cell: str
    arrival_ns: float


@dataclass
class SynthResult:
    """``doping synth --liberty`` (JSON keys as in the issue that asked for it)."""

    liberty: str
    corner: str
    node_nm: int
    clock_ns: float
    worst_slack_ns: float
    fmax_mhz: float
    critical_path: dict
    cell_area_um2: float
    sram_area_um2: float
    area_mm2: float
    power_mw: dict
    activity: float
    activity_source: str = "assumed"
    memories: list = field(default_factory=list)
    cells: int = 0
    tool: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise DopingError("yosys is not installed: run `sudo apt-get install -y yosys` (or `make setup` as root)")
    return exe


def _sta() -> str:
    exe = shutil.which("sta")
    if exe is None:
        raise DopingError("OpenSTA is not installed: run `sudo apt-get install -y opensta` (or `make setup` as root)")
    return exe


#: Seconds one EDA step (yosys, OpenSTA) may run unless ``$DOPING_EDA_TIMEOUT_S`` says otherwise
#: (the flagship preset flat in sky130 maps for over an hour on two shared cores).
EDA_TIMEOUT_S = 3600.0


def eda_timeout_s() -> float:
    raw = os.environ.get("DOPING_EDA_TIMEOUT_S", "")
    if not raw:
        return EDA_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise DopingError(f"DOPING_EDA_TIMEOUT_S must be a positive number of seconds, got {raw!r}")
    return value


def _run(cmd: list[str], cwd: Path, what: str, timeout: float | None = None) -> str:
    timeout = eda_timeout_s() if timeout is None else timeout
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DopingError(f"{what} ran longer than {timeout:.0f} s") from None
    if r.returncode != 0:
        raise DopingError(f"{what} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return r.stdout


def _plain_copy(src: Path, dst: Path) -> None:
    dst.write_text(read_liberty_text(src), encoding="latin-1")


def _stub(cell: str, abits: int, width: int) -> str:
    return (f"(* blackbox *)\nmodule {cell}(input RD_CLK, input RD_EN, input RD_ARST, input RD_SRST, "
            f"input [{abits - 1}:0] RD_ADDR, output [{width - 1}:0] RD_DATA, input WR_CLK, input [{width - 1}:0] WR_EN, "
            f"input [{abits - 1}:0] WR_ADDR, input [{width - 1}:0] WR_DATA);\nendmodule\n")


#: abc's script for a delay target of {ps} picoseconds: yosys's default ``-D`` script without
#: ``&fraig -x`` and ``scorr`` (SAT sweeping: 253 of abc's 282 s on ``minimal`` at Nangate45 for
#: +0.3 % cell area and -0.3 % fmax when left out) and without ``dretime``/``retime`` (abc gets no
#: flip-flops to move); still structural choices, delay-driven mapping, buffering and sizing.
ABC_SCRIPT = ("strash", "dc2", "&get -n", "&dch -f", "&nf -D {ps}", "&put", "buffer -p", "upsize -D {ps}",
              "dnsize -D {ps}", "stime -p")

MEM_PARAMS = ("MEMID", "SIZE", "OFFSET", "ABITS", "WIDTH", "INIT", "RD_PORTS", "RD_CLK_ENABLE", "RD_CLK_POLARITY",
              "RD_TRANSPARENCY_MASK", "RD_COLLISION_X_MASK", "RD_WIDE_CONTINUATION", "RD_CE_OVER_SRST",
              "RD_ARST_VALUE", "RD_SRST_VALUE", "RD_INIT_VALUE", "WR_PORTS", "WR_CLK_ENABLE", "WR_CLK_POLARITY",
              "WR_PRIORITY_MASK", "WR_WIDE_CONTINUATION")


def synthesize(verilog: Path, top: str, lib: Library, clock_ns: float, out_dir: Path, activity: float = 0.1,
               sram_accesses_per_cycle: dict[str, float] | None = None, activity_source: str = "assumed",
               hierarchical: bool = False) -> SynthResult:
    """Map ``verilog`` to ``lib`` at ``clock_ns`` and time it; the netlist, reports and Liberty
    models stay in ``out_dir`` (emptied first). ``activity``: toggles per net per clock for the power report.
    ``sram_accesses_per_cycle``: per memory bank (``activity.sram_rates``), reads plus writes per
    cycle (default: one access every other cycle). ``hierarchical``: keep the design's modules
    (units, lanes, the array) and let abc map and size each on its own, faster on large designs;
    nothing is optimised or buffered across a module boundary, so a net fanning out from one unit
    into many lanes is driven by one small cell and the clock comes out pessimistic (``default``
    at Nangate45: 173 MHz on such a 13-cell path, against the flat flow's figure in
    docs/stdcell_ppa.md). OpenSTA still times every path through the whole hierarchy."""
    from doping.ppa.activity import bank_rate

    if not (0.01 <= clock_ns <= 1000) or not math.isfinite(clock_ns):
        raise DopingError(f"--clock-ns must be between 0.01 and 1000, got {clock_ns}")
    if not 0.0 <= activity <= 2.0:
        raise DopingError(f"activity must be in [0, 2] toggles per clock, got {activity}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        raise DopingError(f"top module name {top!r} is not a Verilog identifier")
    yosys = _yosys()
    _sta()
    work = Path(out_dir)
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise DopingError(f"output {work} is not a folder")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copyfile(verilog, work / "design.v")
    _plain_copy(lib.cells, work / "cells.lib")
    info = cell_info((work / "cells.lib").read_text(encoding="latin-1"))
    macros = [Macro.from_liberty(p) for p in lib.srams]
    _run([yosys, "-q", "-p", f"read_verilog design.v; synth -top {top}{'' if hierarchical else ' -flatten'} -run begin:fine; "
                             "tee -q -o mems.txt dump t:$mem_v2; write_rtlil coarse.il"], work, "yosys (coarse)")
    mems = parse_memories((work / "mems.txt").read_text())
    impls, shapes = [], {}
    for mem in mems:
        impl = (implement(mem.name.lstrip("\\"), mem.size, mem.width, macros, info.flop_memory_um2_per_bit)
                if mem.simple else MemoryImpl(mem.name.lstrip("\\"), mem.size, mem.width, None, (0, 0)))
        impls.append(impl)
        if impl.macro is not None:
            shapes.setdefault((mem.size, mem.width, mem.abits), impl)
    script = ["read_rtlil coarse.il"]
    stubs = []
    for i, ((size, width, abits), impl) in enumerate(sorted(shapes.items())):
        cell = f"doping_sram_{size}x{width}"
        (work / f"sram{i}.lib").write_text(wrapper_liberty(cell, abits, width, impl))
        stubs.append(_stub(cell, abits, width))
        sel = f"t:$mem_v2 r:SIZE={size} %i r:WIDTH={width} %i r:ABITS={abits} %i"
        script += [f"select -set m{i} {sel}", f"chtype -set {cell} @m{i}",
                   f"setparam {' '.join('-unset ' + p for p in MEM_PARAMS)} @m{i}"]
    (work / "srams.v").write_text("".join(stubs))
    if stubs:
        script.insert(0, "read_verilog -lib srams.v")
    (work / "constr.txt").write_text(f"set_driving_cell {info.buffer}\nset_load {0.005 / info.cap_unit_pf:g}\n")
    ps = f"{clock_ns * 1000:.0f}"
    (work / "abc.script").write_text("\n".join(c.format(ps=ps) for c in ABC_SCRIPT) + "\n")
    script += ["opt -fast -full", "memory_map", "opt -full", "techmap", "opt -fast",
               "dfflibmap -liberty cells.lib", "opt -fast",
               f"abc -liberty cells.lib -D {ps} -constr constr.txt -script abc.script", "opt_clean -purge",
               "setundef -zero", "splitnets -ports", "opt_clean",
               "tee -q -o stat.txt stat -liberty cells.lib",
               "write_verilog -noattr -noexpr -nohex -nodec netlist.v"]
    (work / "map.ys").write_text("\n".join(script) + "\n")
    _run([yosys, "-q", "-s", "map.ys"], work, "yosys (map to cells)")
    stat = (work / "stat.txt").read_text()
    stat = stat.split("=== design hierarchy ===")[-1]  # hierarchical: the whole design's totals
    area = re.search(r"Chip area for (?:top )?module .*?:\s*([\d.]+)", stat)
    ncells = re.search(r"Number of cells:\s*(\d+)", stat)
    cell_area = float(area.group(1)) if area else 0.0
    slack, path, power = timing(work, top, clock_ns, activity)
    f_mhz = 1e3 / clock_ns
    sram_dyn_mw = 0.0
    for impl in impls:
        if impl.macro is not None:
            rate = bank_rate(sram_accesses_per_cycle, impl.name) if sram_accesses_per_cycle else None
            rate = 0.5 if rate is None else rate
            sram_dyn_mw += rate * impl.access_energy_pj() * f_mhz * 1e-6 * 1e3  # pJ x MHz = uW; /1e3 -> mW
    sram_leak_mw = sum(i.leakage_uw for i in impls) * 1e-3
    sram_area = sum(i.area_um2 for i in impls)
    return SynthResult(
        liberty=lib.name, corner=lib.corner, node_nm=lib.node_nm, clock_ns=clock_ns, worst_slack_ns=slack,
        fmax_mhz=1e3 / (clock_ns - slack), critical_path=path, cell_area_um2=cell_area, sram_area_um2=sram_area,
        area_mm2=(cell_area + sram_area) * 1e-6,
        power_mw={"internal": power["internal"], "switching": power["switching"], "leakage": power["leakage"],
                  "sram": sram_dyn_mw + sram_leak_mw, "total": power["total"] + sram_dyn_mw + sram_leak_mw},
        activity=activity, activity_source=activity_source, cells=int(ncells.group(1)) if ncells else 0,
        memories=[{"name": i.name, "words": i.depth, "bits": i.width,
                   "macro": i.macro.name if i.macro else "flip-flops", "tiles": list(i.tiles), "count": i.count,
                   "area_um2": i.area_um2, "spare_bits": i.spare_bits,
                   "access_ns": i.macro.access_ns if i.macro else None} for i in impls],
        tool=f"yosys 0.23 (synth {'hierarchical' if hierarchical else '-flatten'}, dfflibmap, abc -liberty -D -constr, "
             "ABC_SCRIPT) "
             "+ OpenSTA 2.0.17 (Debian)")


def timing(work: Path, top: str, clock_ns: float, activity: float = 0.1) -> tuple[float, dict, dict]:
    """OpenSTA on the mapped netlist of ``work`` (a ``synthesize`` output folder) at ``clock_ns``:
    (worst slack ns, critical path, power in mW)."""
    libs = sorted(p.name for p in Path(work).glob("sram*.lib"))
    tcl = ["read_liberty cells.lib", *[f"read_liberty {s}" for s in libs], "read_verilog netlist.v",
           f"link_design {top}", f"create_clock -name clk -period {clock_ns:.4f} [get_ports clk]",
           "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
           "set_output_delay 0 -clock clk [all_outputs]",
           f"set_power_activity -global -activity {activity:g} -duty 0.5",
           "report_checks -path_delay max -digits 4 > path.txt",
           "report_power -digits 6 > power.txt"]
    if libs:  # the worst path leaving an SRAM's read port: does the macro's access time bind?
        tcl.append('report_checks -path_delay max -digits 4 -from [get_cells -filter "ref_name =~ doping_sram*" *] '
                   "> sram_path.txt")
    (work / "sta.tcl").write_text("\n".join(tcl + ["exit"]) + "\n")
    _run([_sta(), "-no_splash", "-exit", "sta.tcl"], work, "OpenSTA")
    slack, path = parse_path((work / "path.txt").read_text())
    netlist = (work / "netlist.v").read_text()
    for end in ("start", "end"):
        path[end + "_register"] = register_name(netlist, path[end], top)
    path["from_sram"] = None
    if libs:
        s_slack, s_path = parse_path((work / "sram_path.txt").read_text())
        path["from_sram"] = {"start": s_path["start"], "end_register": register_name(netlist, s_path["end"], top),
                             "slack_ns": s_slack, "levels": s_path["levels"]}
    return slack, path, parse_power((work / "power.txt").read_text())


def _module_text(netlist: str, name: str) -> str | None:
    m = re.search(r"^module \\?" + re.escape(name) + r"\s*\(.*?^endmodule", netlist, re.S | re.M)
    return m.group(0) if m else None


def register_name(netlist: str, instance: str, top: str = "") -> str:
    """The RTL name of a flip-flop instance of the mapped netlist (the net on its Q pin; abc and
    dfflibmap rename the cells, not the nets), or the instance itself (a port or a macro). In a
    hierarchical netlist ``instance`` is a path (``gemm/array/_0123_``), followed from ``top``
    through each level's instance to the module that holds the flip-flop."""
    *scope, leaf = instance.split("/")
    text = netlist
    if scope and top:
        text = _module_text(netlist, top)
        for inst in scope:
            m = text and re.search(r"^\s*\\?(\S+)\s+\\?" + re.escape(inst) + r"\s*\(", text, re.M)
            text = m and _module_text(netlist, m.group(1))
        if not text:
            return instance
    m = re.search(r"\s" + re.escape(leaf) + r"\s*\((.*?)\);", text, re.S)
    q = re.search(r"\.Q\(\s*\\?([^\s)]+)\s*(\[\d+\])?", m.group(1)) if m else None
    return "/".join([*scope, q.group(1) + (q.group(2) or "")]) if q else instance


def parse_path(text: str) -> tuple[float, dict]:
    """(worst slack in ns, the critical path's start, end and cells) from ``report_checks``."""
    start = re.search(r"Startpoint:\s*(\S+)", text)
    end = re.search(r"Endpoint:\s*(\S+)", text)
    slack = re.search(r"(" + r"[-+]?\d+\.\d+" + r")\s+slack\s+\((MET|VIOLATED)\)", text)
    if not (start and end and slack):
        raise DopingError(f"OpenSTA reported no timed path:\n{text[-2000:]}")
    cells = []
    data = text.split("data arrival time")[0]
    for m in re.finditer(r"^\s*[-\d.]+\s+([-\d.]+)\s+[\^v]\s+(\S+)/\S+\s+\((\S+)\)", data, re.M):
        inst, cell = m.group(2), m.group(3)
        if not cells or cells[-1].instance != inst:
            cells.append(PathCell(inst, cell, float(m.group(1))))
    return float(slack.group(1)), {"start": start.group(1), "end": end.group(1), "cells": [asdict(c) for c in cells],
                                   "levels": len(cells)}


def parse_power(text: str) -> dict:
    """Internal, switching, leakage and total power in mW from ``report_power`` (W); the SRAM
    black boxes carry no power of their own (priced from their macros apart)."""
    def row(name):
        m = re.search(r"^\s*" + name + r"\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
        return [float(v) * 1e3 for v in m.groups()] if m else [0.0] * 4
    if not re.search(r"^\s*Total", text, re.M):
        raise DopingError(f"OpenSTA reported no power:\n{text[-2000:]}")
    total = row("Total")
    return {"internal": total[0], "switching": total[1], "leakage": total[2], "total": total[3]}
