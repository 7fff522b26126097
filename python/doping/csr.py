"""The control/status registers of the AXI IP (``hw/axi.py``, AXI4-Lite port ``s_axil_*``): one
description (``CSRS``) from which the RTL's address decoder (``hw/csr.py``), the register map
(Markdown and JSON), the C header and the testbench's Python accessor (``CsrClient``) all come.
Amaranth-free.

Every register is 32 bits at a byte offset in a 4 KiB window; reads and writes are whole words
(``wstrb`` must be 0xF); an unmapped offset answers SLVERR. The layer registers mirror the core's
register file (``doping.arch.REGS``): a write enters the core as a register load word (the same
word the load stream carries, so it waits while vectors are in flight: the core takes register
words only when idle) and a read returns what the core holds, whichever way it was written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from doping.arch import REGS, UNITS

#: ``ID`` register value: "DOP" and the register map's version.
CSR_ID = 0x444F5001
ADDR_BITS = 12
LAYER_BASE = 0x40


@dataclass(frozen=True)
class Csr:
    """One register: name, byte offset, access (RO, RW or WO), reset value and what it holds
    (fields as (name, lsb, width))."""

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple = ()
    reset: int = 0


CSRS: tuple[Csr, ...] = (
    Csr("ID", 0x00, "RO", f"0x{CSR_ID:08X}: 'DOP' and the register map's version", reset=CSR_ID),
    Csr("CONFIG", 0x04, "RO", "the generated design", (("rows", 0, 8), ("cols", 8, 8), ("lanes", 16, 8),
                                                       ("stream_bytes", 24, 4), ("log2_batch", 28, 4))),
    Csr("STATUS", 0x08, "RO", "units busy now, and sticky error flags (cleared by CONTROL.clear_errors or reset)",
        tuple((f"busy_{u.lower()}", i, 1) for i, u in enumerate(UNITS)) + (("err_x_tlast", 8, 1),
                                                                             ("err_load_word", 9, 1))),
    Csr("CONTROL", 0x0C, "WO", "write 1 to act; reads 0", (("clear_errors", 0, 1), ("clear_counters", 1, 1))),
    Csr("VECTORS", 0x10, "RO", "output vectors delivered on m_axis_y (tlast beats taken) since counters were cleared"),
    Csr("LAST_LATENCY", 0x14, "RO", "cycles of the core's last vector, first x beat .. last y beat"),
    Csr("CYCLES", 0x18, "RO", "cycles since counters were cleared"),
    *(Csr(f"BUSY_{u}", 0x20 + 4 * i, "RO", f"cycles unit {u} was busy since counters were cleared")
      for i, u in enumerate(UNITS)),
    *(Csr(f"LAYER_{r.upper()}", LAYER_BASE + 4 * i, "RW", f"the core's layer register {r!r} (doping.arch.REGS)")
      for i, r in enumerate(REGS)),
)
BY_NAME = {c.name: c for c in CSRS}


def field_value(csr: str, **fields: int) -> int:
    """A register word from field values (``field_value("CONTROL", clear_counters=1)``)."""
    spec = {f[0]: f for f in BY_NAME[csr].fields}
    word = 0
    for name, v in fields.items():
        _, lsb, width = spec[name]
        if not 0 <= v < 1 << width:
            raise ValueError(f"{csr}.{name} = {v} does not fit {width} bits")
        word |= v << lsb
    return word


def as_json() -> str:
    return json.dumps({"address_bits": ADDR_BITS, "word_bits": 32, "registers": [asdict(c) for c in CSRS]},
                      indent=2) + "\n"


def as_markdown() -> str:
    lines = ["# Control/status registers (AXI4-Lite `s_axil_*`)", "",
             "32-bit registers, byte offsets, whole-word access; unmapped offsets answer SLVERR. Generated from "
             "`doping.csr.CSRS`.", "", "| offset | name | access | reset | fields | what |", "|---|---|---|---|---|---|"]
    for c in CSRS:
        fields = ", ".join(f"{n} [{lsb + w - 1}:{lsb}]" if w > 1 else f"{n} [{lsb}]" for n, lsb, w in c.fields)
        lines.append(f"| 0x{c.offset:03X} | {c.name} | {c.access} | 0x{c.reset:X} | {fields} | {c.doc} |")
    return "\n".join(lines) + "\n"


def as_c_header() -> str:
    out = ["/* doping accelerator: control/status registers (AXI4-Lite). Generated from doping.csr.CSRS. */",
           "#ifndef DOPING_CSR_H", "#define DOPING_CSR_H", "", f"#define DOPING_CSR_ID_VALUE 0x{CSR_ID:08X}u", ""]
    for c in CSRS:
        out.append(f"#define DOPING_CSR_{c.name} 0x{c.offset:03X}u /* {c.access}: {c.doc.replace('*/', '* /')} */")
        for n, lsb, w in c.fields:
            out.append(f"#define DOPING_CSR_{c.name}_{n.upper()}_SHIFT {lsb}u")
            out.append(f"#define DOPING_CSR_{c.name}_{n.upper()}_MASK 0x{((1 << w) - 1) << lsb:08X}u")
    out += ["", "#endif /* DOPING_CSR_H */", ""]
    return "\n".join(out)


class CsrClient:
    """Registers by name over any bus object with ``read_dword(addr)`` / ``write_dword(addr, v)``
    coroutines (cocotbext-axi's ``AxiLiteMaster``), at ``base``."""

    def __init__(self, bus, base: int = 0):
        self.bus, self.base = bus, base

    async def read(self, name: str) -> int:
        return await self.bus.read_dword(self.base + BY_NAME[name].offset)

    async def write(self, name: str, value: int) -> None:
        if BY_NAME[name].access == "RO":
            raise ValueError(f"{name} is read-only")
        await self.bus.write_dword(self.base + BY_NAME[name].offset, value)
