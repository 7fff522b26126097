"""Verilator build and simulation time against the C++ optimisation level of the model.

For each config and level (``doping.sim.runner.CXX_OPTS``): a cold build into an empty cache
(generation, Verilator, C++ compile and link), then cocotb runs of one layer with 1 and with
1 + V vectors (the difference isolates the vectors from the load). Reports build seconds, run
seconds and the vector count at which a faster build stops paying for a slower simulation.

  python bench/verilator_opt.py [--configs test default] [--levels Os O0 O1] [--vectors 8]

``test`` is the 4x4 array, 3 lanes that the fast cocotb tests build (tests/sim/test_cocotb.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from doping.config import AccelConfig, load_config
from doping.pack import write_pack
from doping.sim.runner import CXX_OPTS, build, run
from doping.synth import synth_layer

CONFIGS = {  # name: (config, layer shape, ratio)
    "test": (AccelConfig(rows=4, cols=4, lanes=3, max_m=96, max_n=96, max_factor=256, max_intermediate=512,
                         max_nnz=8192), (96, 64), 4.0),
    "default": (load_config("default"), (800, 400), 25.0),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=sorted(CONFIGS))
    ap.add_argument("--levels", nargs="+", default=["Os", "O0", "O1"], choices=[o[1:] for o in CXX_OPTS],
                    help="C++ levels without the dash; the first is the reference")
    ap.add_argument("--vectors", type=int, default=8)
    args = ap.parse_args()
    args.levels = [f"-{level}" for level in args.levels]
    print(f"Verilator cold build and cocotb run per C++ level; {platform.machine()}, {os.cpu_count()} cores, "
          f"{date.today()}\n")
    print("| config | layer | level | build s | run 1 vector s | per extra vector s | break-even vectors vs "
          f"{args.levels[0]} |")
    print("|---|---|---|---:|---:|---:|---:|")
    saved = {k: os.environ.get(k) for k in ("DOPING_CACHE", "DOPING_CXX_OPT")}
    for name in args.configs:
        cfg, shape, ratio = CONFIGS[name]
        first = None
        for level in args.levels:
            with tempfile.TemporaryDirectory(prefix="doping-opt-") as tmp:
                os.environ["DOPING_CACHE"], os.environ["DOPING_CXX_OPT"] = str(Path(tmp, "cache")), level
                t0 = time.perf_counter()
                build(cfg)
                built = time.perf_counter() - t0
                pack = write_pack(Path(tmp, "l.dpack"), [synth_layer(shape, ratio, seed=0)])
                one = run([pack], cfg, vectors=1, seed=0)
                many = run([pack], cfg, vectors=1 + args.vectors, seed=0)
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            assert one.mismatches == many.mismatches == 0
            per_vector = (many.wall_seconds - one.wall_seconds) / args.vectors
            even = "—"  # the vector count at which the two levels' total wall times cross
            if first is None:
                first = (built, one.wall_seconds, per_vector)
            elif per_vector != first[2]:
                crossing = (first[0] + first[1] - built - one.wall_seconds) / (per_vector - first[2])
                even = f"{crossing:.0f}" if crossing > 0 else even
            print(f"| {name} | {shape[0]}×{shape[1]} @{ratio:g}× | {level} | {built:.1f} | {one.wall_seconds:.1f} | "
                  f"{per_vector:.2f} | {even} |", flush=True)


if __name__ == "__main__":
    main()
