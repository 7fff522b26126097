"""CPU inference of a doped Kronecker layer against the dense layer it compresses.

2600x1300 (the PTB-medium LSTM gate matrix) at 25x, synthetic DKP layers at the factor rule's
shapes and at Kronecker shares of the budget (the PTB table's knob): DKP = kron(A, B) x by the
reshape identity in the cheaper association order (``kron_order``) + S x with S in torch's CSR
format; dense = one ``torch.nn.functional.linear`` with the materialised W. Interleaved runs,
medians, ratio; the Kronecker part and the overlay part are also timed alone.

  python bench/dkp_speed.py [--repeats 51] [--threads 1] [--shares rule 0.5 0.75]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import numpy as np
import torch

from doping.compression import choose_factor_shapes, factor_shapes_for_share, overlay_budget
from doping.nn.dkp import kron_matvec, kron_order
from doping.synth import random_csr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=51)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ratio", type=float, default=25.0)
    ap.add_argument("--shares", nargs="+", default=["rule", "0.25", "0.5", "0.75"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m, n = 2600, 1300
    print(f"DKP vs dense inference, {m}x{n} at {args.ratio:g}x; torch {torch.__version__}, {args.threads} "
          f"thread(s), {platform.machine()}, {date.today()}, median of {args.repeats} interleaved runs\n")
    print("| factors (KP share) | order | overlay nnz (density) | batch | KP µs | overlay µs | DKP µs | dense µs | "
          "speed-up (dense / DKP) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for share in args.shares:
        shapes = choose_factor_shapes(m, n) if share == "rule" else factor_shapes_for_share(m, n, args.ratio,
                                                                                            float(share))
        bench_shapes(m, n, args.ratio, shapes, args.repeats)


def bench_shapes(m, n, ratio, shapes, repeats):
    nnz = overlay_budget(m, n, ratio, shapes)
    kp_params = shapes[0][0] * shapes[0][1] + shapes[1][0] * shapes[1][1]
    rng = np.random.default_rng(0)
    rowptr, cols = random_csr(rng, m, n, nnz)
    a = torch.randn(*shapes[0])
    b = torch.randn(*shapes[1])
    s = torch.sparse_csr_tensor(torch.from_numpy(rowptr), torch.from_numpy(cols), torch.randn(nnz), size=(m, n))
    w = torch.kron(a, b) + s.to_dense()

    @torch.inference_mode()
    def kp(x):
        return kron_matvec(a, b, x)

    @torch.inference_mode()
    def overlay(x):
        return (s @ x.T).T

    @torch.inference_mode()
    def dkp(x):
        return kron_matvec(a, b, x) + (s @ x.T).T

    @torch.inference_mode()
    def dense(x):
        return torch.nn.functional.linear(x, w)

    label = f"A {shapes[0][0]}×{shapes[0][1]}, B {shapes[1][0]}×{shapes[1][1]} ({kp_params / (kp_params + nnz):.0%})"
    for batch in (1, 20):
        x = torch.randn(batch, n)
        torch.testing.assert_close(dkp(x), dense(x), rtol=1e-3, atol=1e-2)
        for _ in range(5):
            dkp(x), dense(x)
        times = {k: [] for k in ("kp", "ov", "dkp", "dense")}
        for _ in range(repeats):
            for key, fn in (("kp", kp), ("ov", overlay), ("dkp", dkp), ("dense", dense)):
                t0 = time.perf_counter()
                fn(x)
                times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {label} | {kron_order(shapes[0], shapes[1])} | {nnz} ({nnz / (m * n):.1%}) | {batch} | "
              f"{med['kp'] * 1e6:.0f} | {med['ov'] * 1e6:.0f} | {med['dkp'] * 1e6:.0f} | {med['dense'] * 1e6:.0f} | "
              f"{med['dense'] / med['dkp']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
