"""Golden-model throughput for the PTB-medium gate matrix (2600x1300) at 25x, against a dense
int8 NumPy mat-vec of the same layer (kron(A,B) + S materialised, int32 accumulate).

Runs both side by side, interleaved, and reports medians and their ratio. Prints a markdown table.
Usage: python bench/golden_bench.py [--repeats 31] [--ratio 25]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import numpy as np

from doping import golden
from doping.synth import random_inputs, synth_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--ratio", type=float, default=25.0)
    ap.add_argument("--shape", default="2600x1300")
    args = ap.parse_args()
    m, n = map(int, args.shape.split("x"))
    layer = synth_layer((m, n), args.ratio, seed=0)
    w = (np.kron(layer.a.astype(np.int32), layer.b.astype(np.int32)) + layer.dense_overlay()).astype(np.int32)

    def dense(x):
        return x.astype(np.int32) @ w.T

    rows = []
    for batch in (1, 20):
        x = random_inputs(layer, batch, seed=1)
        golden.forward(layer, x), dense(x)  # warm-up
        tg, td = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter(); golden.forward(layer, x); t1 = time.perf_counter()
            dense(x); t2 = time.perf_counter()
            tg.append(t1 - t0); td.append(t2 - t1)
        g, d = statistics.median(tg), statistics.median(td)
        rows.append((batch, g, d))
    print(f"golden bench, {m}x{n} at {args.ratio:g}x (A {layer.a.shape}, B {layer.b.shape}, nnz {layer.nnz}, "
          f"order {layer.order}); {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"{date.today()}, median of {args.repeats}\n")
    print("| batch | golden (full integer pipeline) ms | dense int8 mat-vec (int32 acc) ms | golden vectors/s | dense / golden time |")
    print("|---|---|---|---|---|")
    for batch, g, d in rows:
        print(f"| {batch} | {g * 1e3:.2f} | {d * 1e3:.2f} | {batch / g:.0f} | {d / g:.2f} |")


if __name__ == "__main__":
    main()
