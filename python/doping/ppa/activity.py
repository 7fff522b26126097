"""Switching activity of a simulation run, for the power report: toggles per bit per clock cycle
from the VCD that Verilator writes (``WAVES=1``), and SRAM accesses per cycle from the cycle
model of the pack being priced.

The VCD is read as a stream (bounded in size); every traced bit but the clock counts, scopes
and hierarchy are ignored. The mean over bits is what ``set_power_activity -global`` takes: the
netlist's nets are not the RTL's one for one (flattened, mapped by abc), so the measured mean
stands for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from doping.errors import DopingError
from doping.fileio import check_input_file

MAX_VCD_BYTES = 2 << 30


@dataclass(frozen=True)
class Activity:
    toggles_per_bit_cycle: float  # mean over every traced bit but the clock
    cycles: int  # rising clock edges in the dump
    bits: int


def vcd_activity(path: str | Path, clock: str = "clk", last_cycles: int | None = None) -> Activity:
    """Toggles per traced bit per rising clock edge, over the whole dump or over its last
    ``last_cycles`` cycles (the streaming window of a run, without the model's load before it)."""
    path = check_input_file(path, "VCD file", MAX_VCD_BYTES)
    widths: dict[str, int] = {}
    clock_ids: set[str] = set()
    last: dict[str, str] = {}
    toggles = 0
    per_cycle = []  # toggles counted up to each rising edge
    cycles = 0
    in_header = True
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            if in_header:
                m = re.match(r"\s*\$var\s+\S+\s+(\d+)\s+(\S+)\s+(\S+)", line)
                if m:
                    widths[m.group(2)] = int(m.group(1))
                    if m.group(3) == clock:
                        clock_ids.add(m.group(2))
                elif "$enddefinitions" in line:
                    in_header = False
                continue
            line = line.strip()
            if not line or line[0] in "#$":
                continue
            if line[0] in "bB":
                value, _, ident = line[1:].partition(" ")
            elif line[0] in "01xzXZ":
                value, ident = line[0], line[1:]
            else:
                continue  # real-valued and string changes: none in this design
            if ident in clock_ids:
                if value == "1" and last.get(ident) == "0":
                    cycles += 1
                    per_cycle.append(toggles)
                last[ident] = value
                continue
            prev = last.get(ident)
            if prev is not None:
                w = widths.get(ident, len(value))
                a, b = prev.rjust(w, "0"), value.rjust(w, "0")
                toggles += sum(x != y for x, y in zip(a, b))
            last[ident] = value
    bits = sum(w for i, w in widths.items() if i not in clock_ids)
    if not clock_ids or cycles == 0 or bits == 0:
        raise DopingError(f"{path}: no clock named {clock!r} toggling, or no signals: not a VCD of the design")
    if last_cycles is not None and 0 < last_cycles < cycles:
        toggles -= per_cycle[cycles - last_cycles - 1]
        cycles = last_cycles
    return Activity(toggles / (bits * cycles), cycles, bits)


def sram_rates(layers, cfg) -> dict[str, float]:
    """Reads plus writes per cycle of every memory bank, named as the netlist names them
    (``<memory><bank>``), while the pack's layers stream: each layer's per-vector accesses
    (``estimate.model.accesses``) over its steady-state interval, weighted by that interval."""
    from doping.estimate.cycles import schedule
    from doping.estimate.model import accesses

    total_cycles = 0.0
    per_mem: dict[str, float] = {}
    for layer in layers:
        s = schedule(layer, cfg)
        total_cycles += s.interval
        for name, acc in accesses(layer, cfg, s).items():
            per_mem[name] = per_mem.get(name, 0.0) + acc["reads"] + acc["writes"]
    out = {}
    for name, mem in cfg.memories.items():
        rate = per_mem.get(name, 0.0) / total_cycles / mem.banks if total_cycles else 0.0
        for bank in range(mem.banks):
            out[f"{name}{bank}"] = rate
    return out


def bank_rate(rates: dict[str, float], netlist_name: str) -> float | None:
    """The rate of a netlist memory (``kbuf0``, ``act_p0_0``: Amaranth suffixes a bank index and,
    for a memory of memories, an inner index) or None when no memory of the model matches."""
    if netlist_name in rates:
        return rates[netlist_name]
    base = re.sub(r"_\d+$", "", netlist_name)
    return rates.get(base)


def pack_activity(pack: str | Path, cfg, vectors: int) -> tuple[float, str, dict[str, float]]:
    """(toggles per bit per cycle, where it comes from, SRAM accesses per bank per cycle) of the
    pack running on the design: a Verilator run with waveforms, and the cycle model."""
    from doping.pack import read_pack
    from doping.sim.runner import run

    pk = read_pack(pack)
    for layer in pk.layers:
        cfg.check(layer)
    r = run([pack], cfg, vectors=vectors, waves=True)
    if r.mismatches:
        raise DopingError(f"the activity run of {pack} mismatched the golden model ({r.mismatches} outputs)")
    act = vcd_activity(Path(r.waves) / "dump.vcd", last_cycles=r.total_cycles)
    source = (f"Verilator VCD of {Path(pack).name}, {vectors} vectors: the last {act.cycles} cycles (first x offered "
              f".. last y taken, the load before it left out), {act.bits} traced bits")
    return act.toggles_per_bit_cycle, source, sram_rates(pk.layers, cfg)
