"""The IP's register description (``doping.csr``): one source for the RTL decoder, the register
map, the C header and the testbench accessor."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from doping import csr
from doping.arch import REGS, UNITS


def test_offsets_are_unique_aligned_and_in_the_window():
    offsets = [c.offset for c in csr.CSRS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 and o < 1 << csr.ADDR_BITS for o in offsets)
    assert [c.name for c in csr.CSRS if c.name.startswith("LAYER_")] == [f"LAYER_{r.upper()}" for r in REGS]
    assert {f"BUSY_{u}" for u in UNITS} <= set(csr.BY_NAME)
    for c in csr.CSRS:  # fields inside the word, not overlapping
        bits = [b for _, lsb, w in c.fields for b in range(lsb, lsb + w)]
        assert len(set(bits)) == len(bits) and all(b < 32 for b in bits), c.name


def test_field_value_packs_and_refuses_overflow():
    assert csr.field_value("CONTROL", clear_counters=1) == 2
    assert csr.field_value("CONFIG", rows=16, cols=10, lanes=64, stream_bytes=8, log2_batch=2) == 0x2840_0A10
    with pytest.raises(ValueError, match="does not fit"):
        csr.field_value("CONFIG", stream_bytes=16)


def test_map_json_markdown_and_c_header_agree(tmp_path):
    regs = json.loads(csr.as_json())["registers"]
    assert [(r["name"], r["offset"]) for r in regs] == [(c.name, c.offset) for c in csr.CSRS]
    md = csr.as_markdown()
    assert all(f"| 0x{c.offset:03X} | {c.name} |" in md for c in csr.CSRS)
    header = csr.as_c_header()
    assert all(f"#define DOPING_CSR_{c.name} 0x{c.offset:03X}u" in header for c in csr.CSRS)
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (Verilator builds need one too)"
    src = tmp_path / "t.c"
    (tmp_path / "doping_csr.h").write_text(header)
    src.write_text('#include "doping_csr.h"\n_Static_assert(DOPING_CSR_LAYER_M == 0x%Xu, "m");\n'
                   % csr.BY_NAME["LAYER_M"].offset + "int main(void) { return DOPING_CSR_ID_VALUE != 0x%Xu; }\n"
                   % csr.CSR_ID)
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(src)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0


def test_client_refuses_writes_to_read_only_registers():
    import asyncio

    class Bus:
        async def write_dword(self, a, v):
            raise AssertionError("must not reach the bus")

    with pytest.raises(ValueError, match="read-only"):
        asyncio.run(csr.CsrClient(Bus()).write("VECTORS", 0))


def test_pack_words_writes_a_replayable_load_stream(tmp_path, capsys):
    """``doping pack words``: hex, binary and C array hold exactly the load words the loader
    makes (the AXI bench proves that word format on the bus), every layer in its own region."""
    from doping.arch import LOAD_WORD_BYTES, pack_load_word
    from doping.cli import main
    from doping.estimate.designs import fit_layers
    from doping.config import PRESETS
    from doping.hw.loader import load_words
    from doping.pack import read_pack

    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--method", "lmf", "--shape", "60x40", "--ratio", "4", "-o", str(pack)]) == 0
    out = tmp_path / "words"
    assert main(["pack", "words", str(pack), "-o", str(out)]) == 0
    layers = read_pack(pack).layers
    cfg = fit_layers(PRESETS["default"], layers)
    meta = json.loads((out / "load.json").read_text())
    assert meta["resident"] == (len(layers) <= cfg.resident_layers)
    regions = range(len(layers)) if meta["resident"] else [0]
    want = [pack_load_word(*w) for r in regions for w in load_words(layers[r], cfg, r if meta["resident"] else 0)]
    raw = (out / "load.bin").read_bytes()
    assert [int.from_bytes(raw[i:i + LOAD_WORD_BYTES], "little") for i in range(0, len(raw), LOAD_WORD_BYTES)] == want
    assert [int(line, 16) for line in (out / "load.hex").read_text().split()] == want
    src = tmp_path / "t.c"
    src.write_text(f'#include "{out / "load.h"}"\nint main(void) {{ return !(sizeof doping_load_words == '
                   f'DOPING_LOAD_WORD_COUNT * DOPING_LOAD_WORD_BYTES && DOPING_LOAD_WORD_COUNT == {len(want)}u && '
                   f'doping_load_words[{LOAD_WORD_BYTES}] == {raw[LOAD_WORD_BYTES]}); }}\n')
    cc = shutil.which("cc") or shutil.which("gcc")
    r = subprocess.run([cc, "-std=c11", "-Wall", "-o", str(tmp_path / "t"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0
