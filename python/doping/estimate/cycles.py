"""Exact cycle model of the generated accelerator (hw/top.py), per phase and per vector.

Cycle 0 is the cycle the first x element is accepted; x arrives whenever the design is ready
and y is always ready (the estimator's assumption; the RTL tests also check back-pressure).
With K, rows and cols of each GEMM as in docs/hardware.md:

  RECV   n: one element per cycle into the activation memory and the input buffer
  G1     tiles * (K + (R + C - 1) + D) + G1_SETTLE   FEED K, FLUSH R+C-1, DRAIN D (C for the AX
  G2     tiles * (K + (R + C - 1) + D)               first GEMM's row drain, else R); G1's
                                                     requantised writes land G1_SETTLE later
  gather from cycle 0, concurrently with RECV and the GEMMs: the input buffer is broadcast to
         the lanes at the pace of the slowest (``gather_timing``)
  SEND   from max(end of G2, every lane done): y[i] is read one per cycle and is on the y
         stream SEND_LATENCY cycles after its read

vector cycles (first x accepted .. last y accepted, inclusive) = RECV + G1 + G2 + SEND.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from doping.config import AccelConfig, ceil_div
from doping.golden import QuantLayer


@dataclass(frozen=True)
class Gemm:
    rows: int
    cols: int
    k: int
    drain: int
    tiles: int

    def cycles(self, cfg: AccelConfig) -> int:
        return self.tiles * (self.k + cfg.rows + cfg.cols - 1 + self.drain)

    def macs(self) -> int:
        return self.rows * self.cols * self.k


@dataclass(frozen=True)
class Schedule:
    phases: dict  # RECV, G1, G2, SEND -> cycles
    cycles: int  # per vector
    gemms: tuple
    lane_entries: tuple
    kp_macs: int
    nnz: int
    bound: int  # max(ceil(KP MACs / (R*C)), ceil(nnz / L), n, m): the busiest resource's cycles
    gather_end: int  # first cycle at which every gather lane is done

    def as_dict(self) -> dict:
        d = asdict(self)
        d["gemms"] = [asdict(g) for g in self.gemms]
        return d


def gemms(layer: QuantLayer, cfg: AccelConfig) -> tuple[Gemm, Gemm]:
    (m1, n1), (m2, n2) = layer.factor_shapes
    R, C = cfg.rows, cfg.cols
    if layer.order == "AX":
        dims = ((m1, n2, n1, C), (m1, m2, n2, R))
    else:
        dims = ((n1, m2, n2, R), (m1, m2, n1, R))
    return tuple(Gemm(r, c, k, d, ceil_div(r, R) * ceil_div(c, C)) for r, c, k, d in dims)


def gather_timing(layer: QuantLayer, cfg: AccelConfig, entries=None) -> tuple[list[int], list[int]]:
    """Arrival cycle of every x element and the cycle from which each lane's ``done`` is seen.

    Element j is accepted at cycle j (RECV never waits), read from the input buffer for the
    broadcast at r_j = max(r_{j-1} + 1, j + 1, every lane's waiting entry has column > j - F)
    (F = ``cfg.x_window``) and written into the windows at a_j = r_j + 1. A lane started at
    cycle 0 has entry 0 waiting at s_0 = 2; entry p is consumed at c_p = max(s_p, a[col_p] + 1)
    and the next waits from c_p + 1; its ``end`` word waits from s_end, and ``done`` is seen
    from s_end + 1. Returns (a_j per element, done cycle per lane).
    """
    import numpy as np

    from doping.hw.loader import lane_entries

    F, n = cfg.x_window, layer.n
    cols = [ent[:, 0] for ent in (entries or lane_entries(layer, cfg))]
    j = np.arange(n, dtype=np.int64)
    # Least fixed point of the monotone system, from the unconstrained broadcast (r_j = j + 1):
    # each pass recomputes the lanes' consumption from the arrivals, then the broadcast from the
    # lanes' windows; arrivals only grow, and stop changing at the causal solution.
    arrive = j + 2
    while True:
        need = np.zeros(n, dtype=np.int64)
        done = []
        for c in cols:
            p = np.arange(len(c), dtype=np.int64)
            # c_p = max(s_0 + p, max_{q <= p} (a[col_q] + 1 + p - q))
            cons = p + np.maximum.accumulate(np.maximum(arrive[c] + 1 - p, 2)) if len(c) else p
            wait = np.concatenate(([2], cons + 1))  # s of each entry, then of the end word
            done.append(int(wait[-1]) + 1)
            first_past = np.searchsorted(c, j - F, side="right")  # first entry with column > j - F
            np.maximum(need, np.where(j >= F, wait[first_past], 0), out=need)
        read = j + np.maximum.accumulate(np.maximum(need - j, 1))
        if np.array_equal(read + 1, arrive):
            return arrive.tolist(), done
        arrive = read + 1


def schedule(layer: QuantLayer, cfg: AccelConfig) -> Schedule:
    """Cycles of one vector through ``layer`` on ``cfg``; equal to what the RTL takes."""
    from doping.hw.loader import lane_entries
    from doping.hw.top import G1_SETTLE, SEND_LATENCY

    cfg.check(layer)
    g1, g2 = gemms(layer, cfg)
    lanes = lane_entries(layer, cfg)
    entries = tuple(len(e) for e in lanes)
    arrive, done = gather_timing(layer, cfg, lanes)
    recv = layer.n
    kp_end = recv + g1.cycles(cfg) + G1_SETTLE + g2.cycles(cfg)
    first_issue = max(kp_end, max(done))
    total = first_issue + layer.m - 1 + SEND_LATENCY + 1
    phases = {"RECV": recv, "G1": g1.cycles(cfg) + G1_SETTLE, "G2": g2.cycles(cfg), "SEND": total - kp_end}
    kp = g1.macs() + g2.macs()
    bound = max(ceil_div(kp, cfg.rows * cfg.cols), ceil_div(layer.nnz, cfg.lanes), layer.n, layer.m)
    return Schedule(phases, total, (g1, g2), entries, kp, layer.nnz, bound, max(done))
