"""Simulation speed of the generated accelerator under Verilator (cocotb): wall time for one
2600x1300 @ 25x vector on the default config, and simulated cycles per second.

The run loads the pack through the load stream (one word per cycle) and then streams the vectors,
so it is measured twice, with 1 and with 1 + V vectors, and the difference isolates the vectors.
Build time is excluded (the build is cached before timing).

  python bench/sim_speed.py [--config default] [--vectors 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import date
from pathlib import Path

from doping.config import load_config
from doping.hw.loader import load_words
from doping.pack import write_pack
from doping.sim.runner import build, run
from doping.synth import synth_layer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--vectors", type=int, default=4)
    args = ap.parse_args()
    cfg = load_config(args.config)
    build(cfg)
    layer = synth_layer((2600, 1300), 25, seed=0)
    load_cycles = len(load_words(layer, cfg))
    with tempfile.TemporaryDirectory() as tmp:
        pack = write_pack(Path(tmp) / "l.dpack", [layer])
        one = run([pack], cfg, vectors=1, seed=0)
        many = run([pack], cfg, vectors=1 + args.vectors, seed=0)
    vec_cycles = sum(many.latency_cycles[1:])
    per_vector = (many.wall_seconds - one.wall_seconds) / args.vectors
    out = {"date": str(date.today()), "machine": f"{platform.machine()}, {platform.python_version()}",
           "config": args.config, "load_words": load_cycles,
           "run_1_vector_s": one.wall_seconds, f"run_{1 + args.vectors}_vectors_s": many.wall_seconds,
           "wall_per_vector_s": per_vector, "latency_cycles": many.latency_cycles[1],
           "simulated_cycles_per_s": vec_cycles / (many.wall_seconds - one.wall_seconds),
           "mismatches": one.mismatches + many.mismatches}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
