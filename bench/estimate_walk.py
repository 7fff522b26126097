"""How ``estimate()`` walks the code: with ``sys.setprofile``, the sequence of source files its
Python calls enter, collapsed into stays (consecutive calls in one file), per layer; counts the
stays, the distinct files and the A -> B -> A bounces (a stay in a file, one elsewhere, then the
first file again). Issue 29 asks for each file once per layer and no bounces.

    python bench/estimate_walk.py [--config default] [--json docs/estimate_walk.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("python", "hw", "sim", "golden")


def walk(fn) -> list[str]:
    """Files (relative to the repo) of the doping code each Python call inside ``fn()`` enters,
    in order, collapsed into stays."""
    stays: list[str] = []

    def prof(frame, event, arg):
        if event != "call":
            return
        f = Path(frame.f_code.co_filename)
        try:
            rel = str(f.resolve().relative_to(ROOT))
        except ValueError:
            return  # the standard library
        if rel.split("/")[0] not in SOURCES:
            return  # installed packages (.venv), generated code
        if not stays or stays[-1] != rel:
            stays.append(rel)

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return stays


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
    stays = walk(lambda: estimate(layer, cold))
    row = {"config": a.config, "layer": "synthetic DKP 256x240 @10x", "stays": len(stays),
           "files": len(set(stays)), "bounces": bounces(stays), "sequence": stays}
    print(json.dumps({k: v for k, v in row.items() if k != "sequence"}))
    counts = {f: stays.count(f) for f in dict.fromkeys(stays)}
    print("stays per file:", json.dumps(counts))
    if a.json:
        Path(a.json).write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
