"""How ``estimate()`` walks the code: with ``sys.setprofile``, the sequence of source files its
Python calls enter, collapsed into stays (consecutive calls in one file), per layer; counts the
stays, the distinct files, the A -> B -> A bounces (a stay in a file, one elsewhere, then the
first file again: a caller calling its own helper after a call out counts) and the callbacks (a
call from file B into a file A that is already on the stack below B: a lower layer calling back
up, the layering fault; ``tests/test_arch.py`` keeps it at 0).

    python bench/estimate_walk.py [--config default] [--json docs/estimate_walk.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("python", "hw", "sim", "golden")


def _source(code) -> str | None:
    """The repo-relative file of a code object of the doping sources, else None (the standard
    library, installed packages, generated code)."""
    try:
        rel = str(Path(code.co_filename).resolve().relative_to(ROOT))
    except ValueError:
        return None
    return rel if rel.split("/")[0] in SOURCES else None


def walk(fn) -> tuple[list[str], list[tuple[str, str]]]:
    """Files of the doping code each Python call inside ``fn()`` enters, in order, collapsed into
    stays; and the callbacks: (caller file:function, callee file:function) for every call into a
    file already on the stack below its caller's."""
    stays: list[str] = []
    callbacks: list[tuple[str, str]] = []

    def prof(frame, event, arg):
        if event != "call" or (rel := _source(frame.f_code)) is None:
            return
        if not stays or stays[-1] != rel:
            stays.append(rel)
        below, f = [], frame.f_back
        while f is not None:
            if (r := _source(f.f_code)) is not None:
                below.append((r, f.f_code.co_name))
            f = f.f_back
        if below and below[0][0] != rel and any(r == rel for r, _ in below[1:]):
            callbacks.append((f"{below[0][0]}:{below[0][1]}", f"{rel}:{frame.f_code.co_name}"))

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return stays, callbacks


def bounces(stays: list[str]) -> int:
    return sum(1 for a, _, c in zip(stays, stays[1:], stays[2:]) if a == c)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    from doping.config import load_config
    from doping.estimate.model import estimate
    from doping.synth import synth_layer

    layer = synth_layer((256, 240), 10, factor_shapes=((16, 16), (16, 15)))
    cfg = load_config(a.config)
    estimate(layer, cfg)  # imports and caches out of the walk
    cold = load_config(a.config).__class__(**cfg.as_dict())  # a fresh config: its memory map not yet computed
    stays, callbacks = walk(lambda: estimate(layer, cold))
    row = {"config": a.config, "layer": "synthetic DKP 256x240 @10x", "stays": len(stays),
           "files": len(set(stays)), "bounces": bounces(stays), "callbacks": len(callbacks),
           "callback_calls": [" -> ".join(c) for c in callbacks], "sequence": stays}
    print(json.dumps({k: v for k, v in row.items() if k not in ("sequence", "callback_calls")}))
    counts = {f: stays.count(f) for f in dict.fromkeys(stays)}
    print("stays per file:", json.dumps(counts))
    if a.json:
        Path(a.json).write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
