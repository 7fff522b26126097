"""SRAM macros read from their Liberty files, and a generated memory built from them.

A macro library is one Liberty file per macro (OpenRAM and bsg_fakeram write them so). From each
we read what pricing and timing need, in fixed units: area (um^2), read access time clock -> data
out (ns), the worst input setup to the clock (ns), energy per access (pJ, the clock pin's internal
energy) and leakage (uW). Words x bits come from the cell's ``memory()`` group or, where it has
none (OpenRAM), from the address and data bus widths.

A generated memory (``depth`` words x ``width`` bits, one synchronous read port and one write
port) becomes ``ceil(depth / words) x ceil(width / bits)`` macros of the library's cheapest fit;
the spare words and bits are counted. Where a flip-flop array is smaller than every macro tiling
(tiny buffers), the memory stays in flip-flops, as a real flow would keep it.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path

from doping.errors import DopingError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def read_liberty_text(path: Path, limit: int = 64 << 20) -> str:
    """A Liberty file's text (plain or gzip), bounded in size."""
    path = Path(path)
    if not path.is_file():
        raise DopingError(f"liberty file {path} is not a regular file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError) as e:
        raise DopingError(f"cannot read liberty file {path}: {e}") from None
    if len(data) > limit:
        raise DopingError(f"liberty file {path} is larger than {limit >> 20} MiB")
    return data.decode("latin-1")


def _unit(text: str, key: str, default: float, scale: dict) -> float:
    """A Liberty unit attribute (``time_unit : "1ns"``, ``capacitive_load_unit (1, pf)``) in the
    scale's base unit."""
    m = re.search(key + r'\s*(?::\s*"?\s*(' + _NUM + r')\s*([a-zA-Z]+)"?|\(\s*(' + _NUM + r')\s*,\s*"?([a-zA-Z]+)"?\s*\))',
                  text)
    if not m:
        return default
    value, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    unit = unit.lower()
    if unit not in scale:
        raise DopingError(f"liberty unit {value}{unit} of {key} is not understood")
    return float(value) * scale[unit]


@dataclass(frozen=True)
class Macro:
    """One SRAM macro of a library, in fixed units."""

    name: str
    words: int
    bits: int
    area_um2: float
    access_ns: float  # clock -> read data valid
    setup_ns: float  # worst input setup before the clock
    energy_pj: float  # per clocked access (read or write)
    leakage_uw: float
    two_port: bool  # a read port beside the read/write port (1RW1R), else 1RW
    source: str
    read_edge: str = "rising"  # the clock edge the read data leaves on (OpenRAM: falling)

    @classmethod
    def from_liberty(cls, path: str | Path) -> "Macro":
        path = Path(path)
        text = read_liberty_text(path)
        cell = re.search(r'\bcell\s*\(\s*"?([\w$]+)"?\s*\)\s*\{', text)
        if not cell:
            raise DopingError(f"{path} has no cell")
        name, body = cell.group(1), text[cell.end():]
        area = re.search(r"\barea\s*:\s*(" + _NUM + ")", body)
        if not area:
            raise DopingError(f"{path}: cell {name} has no area")
        words, bits = _geometry(body, name, path)
        volt = _unit(text, "voltage_unit", 1.0, {"v": 1.0, "mv": 1e-3})
        cap_pf = _unit(text, "capacitive_load_unit", 1e-3, {"pf": 1.0, "ff": 1e-3})
        leak_uw = _unit(text, "leakage_power_unit", 1e-3, {"mw": 1e3, "uw": 1.0, "nw": 1e-3, "pw": 1e-6})
        time_ns = _unit(text, "time_unit", 1.0, {"ns": 1.0, "ps": 1e-3})
        leak = re.search(r"\bcell_leakage_power\s*:\s*(" + _NUM + ")", body)
        access = _timing_values(body, ("rising_edge", "falling_edge"), "cell_rise")
        setup = _timing_values(body, ("setup_rising",), "rise_constraint")
        # the clock pins' internal energy per edge (capacitance x voltage^2 units), worst over pins
        energies = [float(v) for m in re.finditer(r"\bpin\s*\(\s*\"?clk\w*\"?\s*\)\s*\{", body)
                    for v in re.findall(r"rise_power\s*\([^)]*\)\s*\{[^}]*?values\s*\(\s*\"\s*(" + _NUM + r")",
                                        body[m.end(): m.end() + 4000])]
        if not access or not energies:
            raise DopingError(f"{path}: cell {name} has no clock-to-output timing or no clock energy")
        return cls(name=name, words=words, bits=bits, area_um2=float(area.group(1)),
                   access_ns=max(access) * time_ns, setup_ns=max(setup or [0.0]) * time_ns,
                   energy_pj=max(energies) * cap_pf * volt * volt,
                   leakage_uw=float(leak.group(1)) * leak_uw if leak else 0.0,
                   two_port=len(re.findall(r"\bpin\s*\(\s*\"?clk\d\"?\s*\)", body)) >= 2, source=path.name,
                   read_edge="falling" if re.search(r"timing_type\s*:\s*falling_edge", body) else "rising")


def _geometry(body: str, name: str, path: Path) -> tuple[int, int]:
    mem = re.search(r"memory\s*\(\s*\)\s*\{[^}]*address_width\s*:\s*(\d+)\s*;[^}]*word_width\s*:\s*(\d+)", body)
    if mem:
        return 1 << int(mem.group(1)), int(mem.group(2))
    # OpenRAM: type groups give bus widths; the data bus is din0, the address bus addr0
    types = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"type\s*\(\s*\"?(\w+)\"?\s*\)\s*\{[^}]*bit_width\s*:\s*(\d+)", body)}
    buses = {m.group(1): m.group(2) for m in re.finditer(r"bus\s*\(\s*\"?(\w+)\"?\s*\)\s*\{\s*bus_type\s*:\s*\"?(\w+)",
                                                         body)}
    try:
        return 1 << types[buses["addr0"]], types[buses["din0"]]
    except KeyError:
        raise DopingError(f"{path}: cannot tell the words and bits of macro {name}") from None


def _timing_values(body: str, kinds: tuple, table: str) -> list[float]:
    out = []
    for m in re.finditer(r"timing_type\s*:\s*(\w+)\s*;", body):
        if m.group(1) not in kinds:
            continue
        seg = body[m.end(): m.end() + 1500]
        t = re.search(table + r"\s*\(\s*\w*\s*\)\s*\{.*?values\s*\(([^)]*)\)", seg, re.S)
        if t:
            out += [float(v) for v in re.findall(_NUM, t.group(1))]
    return out


@dataclass(frozen=True)
class MemoryImpl:
    """How one generated memory is built: ``count`` copies of ``macro`` (None: flip-flops)."""

    name: str
    depth: int
    width: int
    macro: Macro | None
    tiles: tuple[int, int]  # (along the depth, along the width)

    @property
    def count(self) -> int:
        return self.tiles[0] * self.tiles[1]

    @property
    def area_um2(self) -> float:
        return self.count * self.macro.area_um2 if self.macro else 0.0

    @property
    def spare_bits(self) -> int:
        return self.count * self.macro.words * self.macro.bits - self.depth * self.width if self.macro else 0

    @property
    def leakage_uw(self) -> float:
        return self.count * self.macro.leakage_uw if self.macro else 0.0

    def access_energy_pj(self) -> float:
        """Energy of one word read or written: the macros of one row of the tiling are clocked."""
        return self.tiles[1] * self.macro.energy_pj if self.macro else 0.0


#: a bit of a memory kept in flip-flops: its register and its share of the read mux, in flip-flops
FLOPS_PER_MEMORY_BIT = 1.5


def implement(name: str, depth: int, width: int, macros: list[Macro], flop_um2_per_bit: float) -> MemoryImpl:
    """The cheapest of: each macro tiled to depth x width, or flip-flops (``flop_um2_per_bit``:
    a register bit plus its share of the read mux, from the cell library)."""
    best = MemoryImpl(name, depth, width, None, (0, 0))
    best_area = depth * width * flop_um2_per_bit
    for mac in macros:
        impl = MemoryImpl(name, depth, width, mac, (math.ceil(depth / mac.words), math.ceil(width / mac.bits)))
        if impl.area_um2 < best_area:
            best, best_area = impl, impl.area_um2
    return best


def wrapper_liberty(cell: str, abits: int, width: int, impl: MemoryImpl) -> str:
    """A Liberty cell with the pins of yosys' ``$mem_v2`` (one sync read port, one write port)
    carrying the tiled macro's area, access time and setup, so that OpenSTA times the paths into
    and out of the SRAM; its energy and leakage stay out of the cell (``MemoryImpl`` prices them, so
    that no report counts them twice). A depth-tiled memory's output mux is not modelled (one
    level of logic after the access time)."""
    mac = impl.macro
    setup = f"{mac.setup_ns:.4f}"

    # input pins at 2 fF each; yosys' per-bit write enable is one pin of the macro, so its bits
    # share that pin's capacitance
    def constrained(pin, clk, w=None, cap=0.002):
        head = f"    bus({pin}) {{ bus_type : {cell}_{pin}_t;" if w else f"    pin({pin}) {{"
        return (f"{head} direction : input; capacitance : {cap:.6f};\n"
                f"      timing() {{ related_pin : \"{clk}\"; timing_type : setup_rising;\n"
                f"        rise_constraint(scalar) {{ values(\"{setup}\"); }} fall_constraint(scalar) {{ values(\"{setup}\"); }} }}\n"
                f"      timing() {{ related_pin : \"{clk}\"; timing_type : hold_rising;\n"
                f"        rise_constraint(scalar) {{ values(\"0.0\"); }} fall_constraint(scalar) {{ values(\"0.0\"); }} }} }}\n")

    types = "".join(f"  type({cell}_{p}_t) {{ base_type : array; data_type : bit; bit_width : {w}; bit_from : {w - 1}; "
                    f"bit_to : 0; downto : true; }}\n"
                    for p, w in (("RD_ADDR", abits), ("RD_DATA", width), ("WR_ADDR", abits), ("WR_DATA", width),
                                 ("WR_EN", width)))
    acc = f"{mac.access_ns:.4f}"
    return (f"library({cell}_lib) {{\n  delay_model : table_lookup; time_unit : \"1ns\"; voltage_unit : \"1V\";\n"
            f"  current_unit : \"1mA\"; leakage_power_unit : \"1uW\"; capacitive_load_unit(1, pf);\n"
            f"  pulling_resistance_unit : \"1kohm\";\n"
            f"  input_threshold_pct_rise : 50; input_threshold_pct_fall : 50; output_threshold_pct_rise : 50;\n"
            f"  output_threshold_pct_fall : 50; slew_lower_threshold_pct_rise : 20; slew_upper_threshold_pct_rise : 80;\n"
            f"  slew_lower_threshold_pct_fall : 20; slew_upper_threshold_pct_fall : 80;\n{types}"
            f"  cell({cell}) {{\n    area : {impl.area_um2:.3f}; dont_use : true; dont_touch : true;\n"
            f"    cell_leakage_power : 0;\n"
            f"    pin(RD_CLK) {{ direction : input; clock : true; capacitance : 0.005; }}\n"
            f"    pin(WR_CLK) {{ direction : input; clock : true; capacitance : 0.005; }}\n"
            f"    pin(RD_ARST) {{ direction : input; capacitance : 0.001; }}\n"
            f"    pin(RD_SRST) {{ direction : input; capacitance : 0.001; }}\n"
            + constrained("RD_EN", "RD_CLK") + constrained("RD_ADDR", "RD_CLK", abits)
            + constrained("WR_ADDR", "WR_CLK", abits) + constrained("WR_DATA", "WR_CLK", width)
            + constrained("WR_EN", "WR_CLK", width, 0.002 / width)
            + f"    bus(RD_DATA) {{ bus_type : {cell}_RD_DATA_t; direction : output;\n"
            f"      timing() {{ related_pin : \"RD_CLK\"; timing_type : {mac.read_edge}_edge;\n"
            f"        cell_rise(scalar) {{ values(\"{acc}\"); }} cell_fall(scalar) {{ values(\"{acc}\"); }}\n"
            f"        rise_transition(scalar) {{ values(\"0.05\"); }} fall_transition(scalar) {{ values(\"0.05\"); }} }} }}\n"
            f"  }}\n}}\n")
