"""Verilog generation of the accelerator (the LSTM top when the config has ``lstm_cell``), with a
JSON manifest of the design."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from doping.config import AccelConfig
from doping.errors import DopingError

TOP = "doping_accel"
# Amaranth writes an all-zero `initial` block for every memory; SRAM macros have no reset
# contents and the design never reads a word it has not written, so they are dropped (they made
# the default design's Verilog 10 MB).
_ZERO_INIT = re.compile(r"  initial begin\n(?:    \S+\[\d+\] = \d+'[hd]0+;\n)+  end\n")


def _ports(top) -> list[dict]:
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member in top.signature.members.flatten():
        if member.is_port:
            ports.append({"name": "__".join(map(str, path)),
                          "dir": "in" if member.flow == wiring.In else "out",
                          "width": Shape.cast(member.shape).width})
    return ports


def verilog_text(cfg: AccelConfig, mutation: str | None = None) -> tuple[str, list[dict]]:
    cfg.check_buildable()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    from doping.hw.lstm import LSTMAccelerator
    from doping.hw.top import Accelerator

    top = (LSTMAccelerator if cfg.lstm_cell else Accelerator)(cfg, mutation=mutation)
    ports = _ports(top)
    text = verilog.convert(top, name=TOP, emit_src=False, strip_internal_attrs=True)
    return _ZERO_INIT.sub("", text), ports


def manifest(cfg: AccelConfig, ports: list[dict]) -> dict:
    mems = {k: v.as_dict() for k, v in cfg.memories.items()}
    return {"top": TOP, "config": cfg.as_dict(), "memories": mems,
            "sram_bits_total": sum(v["bits"] for v in mems.values()), "ports": ports,
            "files": [f"{TOP}.v"]}


def generate(cfg: AccelConfig, out_dir: str | Path, mutation: str | None = None) -> dict:
    """Write ``doping_accel.v`` and ``manifest.json`` into ``out_dir``; returns the manifest.
    ``mutation`` (tests only) injects one of ``doping.hw.top.MUTATIONS``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DopingError(f"cannot create output folder {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise DopingError(f"output folder {out} is not writable")
    text, ports = verilog_text(cfg, mutation)
    man = manifest(cfg, ports)
    if mutation:
        man["mutation"] = mutation
    from doping.fileio import atomic_path

    with atomic_path(out / f"{TOP}.v") as tmp:
        tmp.write_text(text)
    with atomic_path(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    return man
