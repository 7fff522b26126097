"""A pack's load stream as files a user's own testbench or firmware can replay without Python
(``doping pack words``): every load word of every layer (each into its own resident region when
the config holds them all, else the first layer only), in stream order, as

- ``load.hex``: ``$readmemh`` text, one word a line, ``LOAD_WORD_BYTES * 2`` hex digits (the
  ``s_axis_load_tdata`` beat of the AXI IP; the core's ``load__payload`` is its low 92 bits),
- ``load.bin``: the same words as ``LOAD_WORD_BYTES`` little-endian bytes each,
- ``load.h``: a C array of those bytes (``doping_load_words``, ``DOPING_LOAD_WORD_COUNT``),

and ``load.json`` saying which layer occupies which words and region. Amaranth-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from doping.arch import LOAD_WORD_BITS, LOAD_WORD_BYTES, pack_load_word
from doping.config import AccelConfig
from doping.fileio import atomic_path


def load_image(layers, cfg: AccelConfig) -> tuple[list[int], list[dict]]:
    """(load words as integers, per layer: name, region, first word, word count)."""
    from doping.hw.loader import load_words

    resident = len(layers) <= cfg.resident_layers
    words, index = [], []
    for region, layer in enumerate(layers if resident else layers[:1]):
        ws = [pack_load_word(*w) for w in load_words(layer, cfg, region if resident else 0)]
        index.append({"layer": layer.name, "region": region if resident else 0, "first_word": len(words),
                      "words": len(ws)})
        words += ws
    return words, index


def write_load_image(layers, cfg: AccelConfig, out: Path) -> dict:
    """Write load.hex, load.bin, load.h and load.json into ``out``; returns load.json's content."""
    words, index = load_image(layers, cfg)
    nb = LOAD_WORD_BYTES
    raw = b"".join(w.to_bytes(nb, "little") for w in words)
    c_rows = ",\n".join("  " + ", ".join(f"0x{b:02x}" for b in raw[i:i + nb]) for i in range(0, len(raw), nb))
    meta = {"word_bits": LOAD_WORD_BITS, "word_bytes": nb, "words": len(words), "layers": index,
            "resident": len(layers) <= cfg.resident_layers, "config": cfg.as_dict()}
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "load.hex": "".join(f"{w:0{2 * nb}x}\n" for w in words),
        "load.bin": raw,
        "load.h": (f"/* doping load stream: {len(words)} words of {nb} little-endian bytes (doping pack words) */\n"
                   f"#include <stdint.h>\n#define DOPING_LOAD_WORD_BYTES {nb}u\n"
                   f"#define DOPING_LOAD_WORD_COUNT {len(words)}u\n"
                   f"static const uint8_t doping_load_words[{max(len(raw), 1)}] = {{\n{c_rows or '  0'}\n}};\n"),
        "load.json": json.dumps(meta, indent=2) + "\n",
    }
    for name, content in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(content) if isinstance(content, bytes) else tmp.write_text(content)
    return meta
