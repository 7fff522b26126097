"""Exact cycle model of the generated accelerator (hw/top.py), per phase and per vector.

Cycle 0 is the cycle the first x element is accepted; x arrives every cycle and y is always
ready (the estimator's assumption; the RTL tests also check it under back-pressure). With
K, rows and cols of each GEMM as in docs/hardware.md:

  RECV   n                                      one element per cycle
  G1, G2 tiles * (K + (R + C - 1) + D)          FEED K, FLUSH R+C-1, DRAIN D (C for the AX
                                                first GEMM's row drain, else R)
  gather runs from cycle n on, concurrently: lane l reads its p-th overlay entry (nonzeros, plus
         one per empty row it owns) at cycle n + p; the sum of a row whose last entry is p can be
         read from cycle n + p + 3
  SEND   from the end of G2: y[i] is read at max(read of y[i-1] + 1, its row sum readable) and
         leaves one cycle later

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
    bound: int  # max(ceil(KP MACs / (R*C)), ceil(nnz / L))

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


def row_ready_cycles(layer: QuantLayer, lanes: int):
    """Per output row, the index (within its lane's entry stream) of the row's last entry."""
    import numpy as np

    per_row = np.maximum(np.diff(layer.rowptr), 1)  # an empty row is one dummy entry
    out = np.empty(layer.m, dtype=np.int64)
    for lane in range(lanes):
        rows = np.arange(lane, layer.m, lanes)
        out[rows] = np.cumsum(per_row[rows]) - 1
    return out


def schedule(layer: QuantLayer, cfg: AccelConfig) -> Schedule:
    """Cycles of one vector through ``layer`` on ``cfg``; equal to what the RTL takes."""
    from doping.hw.loader import lane_entries

    cfg.check(layer)
    g1, g2 = gemms(layer, cfg)
    entries = tuple(len(e) for e in lane_entries(layer, cfg.lanes))
    n = layer.n
    kp_end = n + g1.cycles(cfg) + g2.cycles(cfg)
    ready = row_ready_cycles(layer, cfg.lanes) + n + 3
    issue = kp_end - 1
    for r in ready.tolist():
        issue = max(issue + 1, r)
    phases = {"RECV": n, "G1": g1.cycles(cfg), "G2": g2.cycles(cfg), "SEND": issue + 2 - kp_end}
    kp = g1.macs() + g2.macs()
    bound = max(ceil_div(kp, cfg.rows * cfg.cols), ceil_div(layer.nnz, cfg.lanes))
    return Schedule(phases, sum(phases.values()), (g1, g2), entries, kp, layer.nnz, bound)
