"""CPU inference of a doped Kronecker layer against the dense layer it compresses.

2600x1300 (the PTB-medium LSTM gate matrix) at 25x, synthetic DKP layer (doping.synth rule):
DKP = kron(A, B) x by the reshape identity + S x with S in torch's CSR format; dense = one
``torch.nn.functional.linear`` with the materialised W. Interleaved runs, medians, ratio.

  python bench/dkp_speed.py [--repeats 51] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import numpy as np
import torch

from doping.compression import choose_factor_shapes, overlay_budget
from doping.nn.dkp import kron_matvec
from doping.synth import random_csr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=51)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ratio", type=float, default=25.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m, n = 2600, 1300
    shapes = choose_factor_shapes(m, n)
    nnz = overlay_budget(m, n, args.ratio, shapes)
    rng = np.random.default_rng(0)
    rowptr, cols = random_csr(rng, m, n, nnz)
    a = torch.randn(*shapes[0])
    b = torch.randn(*shapes[1])
    s = torch.sparse_csr_tensor(torch.from_numpy(rowptr), torch.from_numpy(cols), torch.randn(nnz), size=(m, n))
    w = torch.kron(a, b) + s.to_dense()

    @torch.inference_mode()
    def dkp(x):
        return kron_matvec(a, b, x) + (s @ x.T).T

    @torch.inference_mode()
    def dense(x):
        return torch.nn.functional.linear(x, w)

    print(f"DKP vs dense inference, {m}x{n} at {args.ratio:g}x (A {shapes[0]}, B {shapes[1]}, nnz {nnz}); torch "
          f"{torch.__version__}, {args.threads} thread(s), {platform.machine()}, {date.today()}, median of {args.repeats}\n")
    print("| batch | DKP µs | dense µs | speed-up (dense / DKP) |")
    print("|---|---|---|---|")
    for batch in (1, 20):
        x = torch.randn(batch, n)
        torch.testing.assert_close(dkp(x), dense(x), rtol=1e-3, atol=1e-2)
        for _ in range(5):
            dkp(x), dense(x)
        td, tw = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter(); dkp(x); t1 = time.perf_counter(); dense(x); t2 = time.perf_counter()
            td.append(t1 - t0); tw.append(t2 - t1)
        d, wd = statistics.median(td), statistics.median(tw)
        print(f"| {batch} | {d * 1e6:.0f} | {wd * 1e6:.0f} | {wd / d:.2f}× |")


if __name__ == "__main__":
    main()
