"""Exact cycle model of the generated accelerator (hw/top.py): per unit, per vector, and for a
stream of vectors (``vector_times``).

Cycle 0 is the cycle the first x beat is accepted; x arrives whenever the design is ready
and y is always ready (the estimator's assumption; the RTL tests also check back-pressure).
A beat carries W = ``stream_bytes`` elements. Per vector, with K, rows and cols of each GEMM as
in docs/hardware.md:

  RECV    ceil(n / W): one beat per cycle into the activation memory and the input buffer
  G1      (tiles - 1) * max(K, S) + K + R + C - 1     once per batch of B vectors (their X side by
                                                      side, AX, or stacked, XB; B = ``batch``);
                                                      tiles back to back: FEED K, and each tile's
          + D + G1_SETTLE                             FLUSH R+C-1 and DRAIN D (C for the AX first
  G2      the same without G1_SETTLE, per vector      GEMM's row drain, else R) under the next
                                                      FEEDs (two shadow banks per PE: S =
                                                      max(D, ceil((R+C-1+D)/2))); G1's requantised
                                                      writes land G1_SETTLE after its last drain
  GATHER  once per batch, from the first x beat of its last vector: the input buffer is
          broadcast to the lanes, a word of W elements of each of the B vectors a cycle, at the
          pace of the slowest lane (``gather_timing``); an entry is B MACs
  SEND    from max(G2's first row band of K, every lane done): a beat of W outputs is read per
          cycle once its elements' row band of K has drained (``k_bands``), and is on the y
          stream SEND_LATENCY cycles after its read

The units overlap across vectors (``vector_times``): one vector's latency is its first x to its
last y; the steady-state interval is what a stream of vectors costs per vector. In XB order at
B = 1 the first GEMM starts once X's first row band (R rows of n2) is in, and each later band of
tiles waits for its rows (``x_bands``, ``g1_on_bands``).
"""

from __future__ import annotations

from dataclasses import dataclass

from doping.arch import G1_SETTLE, PHASES, send_latency, tile_spacing
from doping.config import AccelConfig, ceil_div
from doping.golden import QuantLayer


@dataclass(frozen=True)
class Gemm:
    rows: int
    cols: int
    k: int
    drain: int
    tiles: int

    def spacing(self, cfg: AccelConfig) -> int:
        """Cycles between consecutive tiles' FEED starts: K, or longer when the drains cannot
        keep up (two shadow banks per PE: ``doping.arch.tile_spacing``)."""

        return max(self.k, tile_spacing(cfg.rows, cfg.cols, self.drain))

    def cycles(self, cfg: AccelConfig) -> int:
        """First FEED to last DRAIN: tiles start every ``spacing``; the last flushes and drains."""
        return (self.tiles - 1) * self.spacing(cfg) + self.k + cfg.rows + cfg.cols - 1 + self.drain

    def macs(self) -> int:
        return self.rows * self.cols * self.k


@dataclass(frozen=True)
class Schedule:
    phases: dict  # busy cycles per vector of each phase (doping.arch.PHASES): G1 and GATHER a batch's / B
    cycles: int  # latency of the first vector (first x accepted .. its last y accepted), from idle
    interval: float  # steady state: cycles per vector (a batch's, / B), an integer at B = 1
    gemms: tuple
    lane_entries: tuple
    kp_macs: int
    nnz: int
    bound: int  # max(ceil(KP MACs / (R*C)), ceil(nnz / (L*B)), ceil(n / W), ceil(m / W)): the busiest resource
    gather_end: int  # first cycle at which every gather lane is done (first vector)
    batch: int = 1  # vectors per pass of the first GEMM and of the lanes


def gemms(layer: QuantLayer, cfg: AccelConfig) -> tuple[Gemm, ...]:
    """The two Kronecker GEMMs: the first of a batch of ``cfg.batch`` vectors (B times n2
    columns, AX, or n1 rows, XB), the second of one vector (none without a Kronecker part)."""
    if not layer.has_kp:
        return ()
    (m1, n1), (m2, n2) = layer.factor_shapes
    R, C, B = cfg.rows, cfg.cols, cfg.batch
    if layer.order == "AX":
        dims = ((m1, n2 * B, n1, C), (m1, m2, n2, R))
    else:
        dims = ((n1 * B, m2, n2, R), (m1, m2, n1, R))
    return tuple(Gemm(r, c, k, d, ceil_div(r, R) * ceil_div(c, C)) for r, c, k, d in dims)


def gather_timing(layer: QuantLayer, cfg: AccelConfig, entries=None, start: int = 0,
                  avail: int = 1) -> tuple[list[int], list[int]]:
    """Arrival cycle of every x element and the cycle from which each lane's ``done`` is seen.

    The lanes start at cycle ``start``; word w of the input buffer (elements wW .. wW + W - 1,
    W = ``stream_bytes``) is there from cycle avail + w. It is read for the broadcast at
    r_w = max(r_{w-1} + 1, start + 1, avail + w, every lane's waiting entry has column >
    wW + W - 1 - F) (F = ``cfg.x_window``) and written into the windows at a_w = r_w + 1, the
    arrival of each of its elements. A lane's entry 0 waits from s_0 = start + 2; entry p is consumed at
    c_p = max(s_p, a[col_p] + 1) and the next waits from c_p + 1; its ``end`` word waits from
    s_end, and ``done`` is seen from s_end + 1. Returns (a_j per element, done cycle per lane).
    """
    import numpy as np

    from doping.hw.loader import lane_entries

    F, n, W = cfg.x_window, layer.n, cfg.stream_bytes
    cols = [ent[:, 0] for ent in (entries or lane_entries(layer, cfg))]
    j = np.arange(ceil_div(n, W), dtype=np.int64)  # words
    last = j * W + W - 1  # each word's last element
    # Least fixed point of the monotone system, from the unconstrained broadcast (r_j = j + 1):
    # each pass recomputes the lanes' consumption from the arrivals, then the broadcast from the
    # lanes' windows; arrivals only grow, and stop changing at the causal solution.
    base = max(start + 1, avail)
    arrive_w = j + base + 1
    while True:
        arrive = np.repeat(arrive_w, W)[:n]
        need = np.zeros(len(j), dtype=np.int64)
        done = []
        for c in cols:
            p = np.arange(len(c), dtype=np.int64)
            # c_p = max(s_0 + p, max_{q <= p} (a[col_q] + 1 + p - q))
            cons = p + np.maximum.accumulate(np.maximum(arrive[c] + 1 - p, start + 2)) if len(c) else p
            wait = np.concatenate(([start + 2], cons + 1))  # s of each entry, then of the end word
            done.append(int(wait[-1]) + 1)
            first_past = np.searchsorted(c, last - F, side="right")  # first entry with column > last - F
            np.maximum(need, np.where(last >= F, wait[first_past], 0), out=need)
        read = j + np.maximum.accumulate(np.maximum(need - j, base))
        if np.array_equal(read + 1, arrive_w):
            return arrive.tolist(), done
        arrive_w = read + 1


def interval_lower_bound(layer: QuantLayer, cfg: AccelConfig) -> float:
    """A lower bound on ``schedule(layer, cfg).interval`` from closed forms only (no lane plan, no
    vector timeline): each vector's RECV and SEND beats, its share of the lanes' entries
    (nnz / (L * B)), and the GEMM engine, which runs a batch's first GEMM and then each vector's
    second one after another. A design search skips points this bound already rules out."""
    B = cfg.batch
    g = gemms(layer, cfg)
    gemm = (g[0].cycles(cfg) + B * g[1].cycles(cfg)) / B if g else 0
    return max(beats(layer.n, cfg), beats(layer.m, cfg), layer.nnz / (cfg.lanes * B), gemm)


def beats(elements: int, cfg: AccelConfig) -> int:
    """Stream beats of a vector of ``elements`` int8 values: ceil(elements / stream_bytes)."""
    return ceil_div(elements, cfg.stream_bytes)


def vector_times(layer: QuantLayer, cfg: AccelConfig, vectors: int, lanes=None) -> list[dict]:
    """Cycle of every hand-over for ``vectors`` consecutive vectors (a multiple of the batch B),
    x always valid, y always ready: ``x`` first element accepted, ``gemm`` first FEED of its
    batch's first GEMM, ``gather`` lanes started, ``gather_done`` every lane done, ``send`` first
    y read, ``latency`` (first x .. last y).

    Each unit takes vector v once its inputs are complete and its output half is free
    (hw/top.py): RECV(v) after RECV(v-1), the first GEMM of the batch two before v's (X' is
    double-buffered) and the lanes' v-2B; the first GEMM of batch j one cycle after RECV of its
    last vector (XB at B = 1: once its first row band is in, ``g1_on_bands``) and G2 of the vector
    before; G2 of a batch's first vector G1_SETTLE after its G1,
    of each later vector v one cycle after G2(v-1), each once SEND(v-2) is over (its kbuf half);
    the lanes take batch j after RECV of its last vector began, the lanes' batch j-1 and SEND of
    batch j-2's last vector (its row-sum half), and count the batch done no earlier than the end
    of its RECV; SEND after the lanes' batch of v and SEND(v-1), each beat once its row band of
    G2(v)'s K is in kbuf (``send_issues``). A counter written in cycle
    t is seen from t + 1. Without a Kronecker part the GEMM engine passes a vector in the cycle it
    may start it, and RECV does not wait on it.
    """
    from doping.hw.loader import lane_entries

    lanes = lanes or lane_entries(layer, cfg)
    kp = layer.has_kp
    B = cfg.batch
    assert vectors % B == 0, f"{vectors} vectors are not whole batches of {B}"
    gs = gemms(layer, cfg)
    g1, g2 = (g.cycles(cfg) for g in gs) if kp else (0, 0)
    n, m = beats(layer.n, cfg), beats(layer.m, cfg)
    bands = k_bands(layer, cfg, gs[1]) if kp else ()
    bands_x = x_bands(layer, cfg) if kp and B == 1 and layer.order == "XB" else ()
    out: list[dict] = []

    def seen(v, key):  # a unit's hand-over of vector v (0 before the first vector)
        return out[v][key] if v >= 0 else 0

    for j in range(vectors // B):
        first = j * B
        g1_prev = seen(first - B - 1, "g1_seen") if kp else 0  # X' of the batch before last is read
        xs = []
        for v in range(first, first + B):
            prev_x = xs[-1] if xs else seen(v - 1, "x")
            xs.append(0 if v == 0 else max(prev_x + n, g1_prev, seen(v - 2 * cfg.batch, "lanes_seen")))
        if bands_x:  # XB at B = 1: G1 starts on X's first row band, each band of tiles on its rows
            gemm, g1_seen = g1_on_bands(xs[-1], seen(first - 1, "g2_seen"), bands_x, gs[0], cfg, g1)
        else:
            gemm = max(xs[-1] + n, seen(first - 1, "g2_seen")) + 1
            g1_seen = gemm + g1
        start = max(xs[-1], seen(first - 1, "lanes_seen"), seen(first - B - 1, "sent_seen"))
        _, done = gather_timing(layer, cfg, lanes, start=start, avail=xs[-1] + 1)
        gather_done = max(done)
        lanes_seen = max(gather_done, xs[-1] + n) + 1  # the lanes finish a batch no earlier than its RECV
        for b, x in enumerate(xs):
            v = first + b
            # G2 is decided at the end of SETTLE (first of the batch) or from G2(v-1)'s end, and
            # waits there for SEND(v-2) to free its kbuf half
            ready = g1_seen + G1_SETTLE - 1 if b == 0 else out[v - 1]["g2_seen"]
            g2_seen = max(ready, seen(v - 2, "sent_seen")) + 1 + g2 if kp else gemm
            send, last = send_issues(max(lanes_seen, seen(v - 1, "sent_seen")), g2_seen, bands, m)
            sent_seen = last + 1 + send_latency(cfg)
            out.append({"x": x, "gemm": gemm, "g1_seen": g1_seen, "g2_seen": g2_seen, "gather": start,
                        "gather_done": gather_done, "lanes_seen": lanes_seen, "send": send,
                        "sent_seen": sent_seen, "latency": sent_seen - x})
    return out


def k_bands(layer: QuantLayer, cfg: AccelConfig, g: Gemm) -> tuple[tuple[int, int], ...]:
    """SEND behind the second GEMM ``g``: per row band of K (R rows, all column tiles; the engine's
    ``k_ready``), (cycles before the GEMM's end at which the band is seen complete, beats of y
    SEND may issue once it is: a beat's W elements all in the done bands, or the last band)."""
    ctiles, spacing, W = ceil_div(g.cols, cfg.cols), g.spacing(cfg), cfg.stream_bytes
    bands = ceil_div(g.rows, cfg.rows)
    out = []
    for b in range(bands):
        ready = min((b + 1) * cfg.rows * g.cols, layer.m)
        beats_ok = beats(layer.m, cfg) if b == bands - 1 else ready // W
        out.append(((g.tiles - (b + 1) * ctiles) * spacing, beats_ok))
    return tuple(out)


def x_bands(layer: QuantLayer, cfg: AccelConfig) -> tuple[int, ...]:
    """XB at B = 1: per row band of the first GEMM (R rows of X, ``n2`` elements each), the cycles
    after the vector's first x beat from which the band's rows are seen in (RECV's count of
    elements, which drops to 0 on the last beat: then the vector is seen whole, after all its
    beats)."""
    (_, n1), (_, n2) = layer.factor_shapes
    n = beats(layer.n, cfg)
    out = []
    for b in range(ceil_div(n1, cfg.rows)):
        k = ceil_div((b + 1) * cfg.rows * n2, cfg.stream_bytes)
        out.append(k if k < n else n)
    return tuple(out)


def g1_on_bands(x: int, engine_free: int, bands_x, g: Gemm, cfg: AccelConfig, g1: int) -> tuple[int, int]:
    """The first GEMM's first FEED and its end seen (``g1_seen``) when each row band of tiles
    waits for its rows of X (``x_bands``): a tile starts ``spacing`` after the one before or the
    cycle after its band is seen in, whichever is later."""
    ctiles, spacing = ceil_div(g.cols, cfg.cols), g.spacing(cfg)
    start = f = max(x + bands_x[0], engine_free) + 1
    for t in range(1, g.tiles):
        f = max(f + spacing, x + bands_x[t // ctiles] + 1)
    return start, f + g1 - (g.tiles - 1) * spacing


def send_issues(start: int, g2_seen: int, bands, m: int) -> tuple[int, int]:
    """First and last issue cycle of SEND's ``m`` beats: from ``start`` (row sums and the previous
    vector done), one a cycle, each once its row band of K is seen (``k_bands``; without a
    Kronecker part once the vector has passed the GEMM engine, ``g2_seen``)."""
    t, first, j = start - 1, None, 0
    for before_end, ok in bands or ((0, m),):
        if ok > j:  # the band's beats go back to back from the first one it lets through
            t = max(t + 1, start, g2_seen - before_end)
            first = t if first is None else first
            t, j = t + ok - j - 1, ok
    return first, t


#: Vectors ``schedule`` simulates at first: twice the pipeline's depth (RECV, GEMM and gather,
#: SEND: four vectors), at least four batches a half. A unit that runs ahead (SEND behind the
#: GEMMs, the lanes) settles only after several batches, so the run doubles until the batch span
#: half way equals the last three, at most ``MAX_STEADY_BATCHES`` batches.
STEADY_VECTORS = 12
MAX_STEADY_BATCHES = 64


def steady_vectors(batch: int) -> int:
    return max(STEADY_VECTORS, 8 * batch)


def steady_times(layer: QuantLayer, cfg: AccelConfig, lanes) -> tuple[list[dict], float]:
    """The vector timeline long enough to reach the steady state, and one batch's span there (at
    the cap, the mean of the last two)."""
    B, vectors = cfg.batch, steady_vectors(cfg.batch)
    while True:
        times = vector_times(layer, cfg, vectors, lanes)
        sent = [t["sent_seen"] for t in times]

        def span(end):  # the batch ending with vector ``end``
            return sent[end] - sent[end - B]

        last = [span(len(sent) - 1 - k * B) for k in range(3)]
        half = vectors // B // 2 * B - 1
        if len(set(last)) == 1 and span(half) == last[0]:
            return times, last[0]
        if vectors >= MAX_STEADY_BATCHES * B:
            return times, (last[0] + last[1]) / 2
        vectors *= 2


def schedule(layer: QuantLayer, cfg: AccelConfig) -> Schedule:
    """Cycles of ``layer`` on ``cfg``: one vector's latency and the steady-state interval, equal
    to what the RTL takes."""
    from doping.hw.loader import lane_entries

    cfg.check(layer)
    gs = gemms(layer, cfg)
    lanes = lane_entries(layer, cfg)
    entries = tuple(len(e) for e in lanes)
    B = cfg.batch
    times, span = steady_times(layer, cfg, lanes)  # span: one batch in the steady state
    first = times[0]
    interval = span / B if B > 1 else span
    g1, g2 = (gs[0].cycles(cfg) + G1_SETTLE, gs[1].cycles(cfg)) if gs else (0, 0)
    n, m = beats(layer.n, cfg), beats(layer.m, cfg)
    gather = first["gather_done"] - first["gather"]  # a batch's
    per_vector = {"RECV": n, "G1": g1 / B if B > 1 else g1, "G2": g2,
                  "GATHER": gather / B if B > 1 else gather, "SEND": m + send_latency(cfg)}
    phases = {ph: per_vector[ph] for ph in PHASES}
    kp = gs[0].macs() // B + gs[1].macs() if gs else 0  # per vector
    bound = max(ceil_div(kp, cfg.rows * cfg.cols), ceil_div(layer.nnz, cfg.lanes * B), n, m)
    return Schedule(phases, first["latency"], interval, gs, entries, kp, layer.nnz, bound,
                    first["gather_done"], B)
