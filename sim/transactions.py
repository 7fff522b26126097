"""The transaction layer every bench shares (cocotb on Verilator/Icarus, cocotbext-axi on the AXI
IP, ``amaranth.sim`` in tests/hw): what goes in and comes out, independent of the simulator.

- Stream payloads are integers in the spec's formats (``doping.arch``: ``pack_load_word``,
  ``x_beats``, ``y_beat``, ``token_beats``, ``h_elements``); the simulator adapters
  (``doping.sim.streams_cocotb``, ``doping.sim.streams_amaranth``) only move them on valid/ready.
- Back-pressure comes from outside: a pause generator (``pauses``) per source or sink, as
  cocotbext-axi's ``set_pause_generator`` takes it.
- ``VectorCollector`` turns y beats back into vectors (checking ``last``); ``Scoreboard`` checks
  each output transaction against the golden model's as it leaves the design.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from doping.arch import pack_load_word, y_beat

#: Mismatching transactions kept as examples in a result.
MAX_EXAMPLES = 5


def pauses(rng: np.random.Generator, p: float) -> Iterator[bool]:
    """A pause generator: True (hold this cycle: no valid from a source, no ready from a sink) with
    probability ``p`` each cycle; draws nothing from ``rng`` when ``p`` is 0."""
    return (bool(p and rng.random() < p) for _ in itertools.count())


class Paced:
    """Base of every simulator's stream source and sink: its cycles held by a pause generator set
    from outside (``set_pause_generator``, as cocotbext-axi's; None: never paused)."""

    _pause: Iterator[bool] | None = None

    def set_pause_generator(self, gen: Iterator[bool] | None) -> None:
        self._pause = gen

    def paused(self) -> bool:
        """Whether this cycle is held (draws the generator's next value)."""
        return self._pause is not None and next(self._pause)


def load_payloads(words) -> list[int]:
    """Load words ``(sel, addr, data)`` (``doping.hw.loader``) as load-stream payloads."""
    return [pack_load_word(*w) for w in words]


class VectorCollector:
    """Reassembles y beats (``w`` int8 outputs each, ``last`` on a vector's final beat) into
    vectors of ``m`` outputs; counts beats whose ``last`` is wrong. ``on_vector(values)`` is called
    as each vector completes."""

    def __init__(self, m: int, w: int, on_vector: Callable[[list[int]], None] | None = None):
        self.m, self.w, self.on_vector = m, w, on_vector
        self.values: list[int] = []
        self.vectors = 0
        self.bad_last = 0

    def take(self, payload: int) -> bool:
        """One transferred y beat; True when it completed a vector."""
        left = self.m - len(self.values) % self.m  # outputs of this vector still to come
        vals, last = y_beat(payload, self.w)
        self.values += vals[:min(self.w, left)]
        self.bad_last += last != (left <= self.w)
        if left > self.w:
            return False
        self.vectors += 1
        if self.on_vector:
            self.on_vector(self.values[-self.m:])
        return True

    def array(self) -> np.ndarray:
        return np.array(self.values, dtype=np.int64).reshape(-1, self.m)


class Scoreboard:
    """Per-transaction check: ``expect`` queues the reference outputs (one row per transaction,
    each with labels for the report), ``check`` compares the next output transaction with the
    oldest expected one as it leaves the design. Counts mismatching transactions and keeps the
    first ``MAX_EXAMPLES`` (labels, first wrong element, got, want, elements wrong)."""

    def __init__(self):
        self._want: deque[tuple[np.ndarray, dict]] = deque()
        self.checked = 0
        self.mismatches = 0
        self.examples: list[dict] = []

    def expect(self, rows, labels: Callable[[int], dict] | None = None) -> None:
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            self._want.append((row, labels(i) if labels else {}))

    @property
    def pending(self) -> int:
        """Expected transactions not seen yet."""
        return len(self._want)

    def check(self, got) -> bool:
        if not self._want:
            raise AssertionError(f"output transaction {self.checked} arrived with nothing expected")
        want, labels = self._want.popleft()
        got = np.asarray(got, dtype=np.int64)
        self.checked += 1
        if got.shape == want.shape and np.array_equal(got, want):
            return True
        self.mismatches += 1
        if len(self.examples) < MAX_EXAMPLES:
            wrong = np.flatnonzero(got != want) if got.shape == want.shape else [0]
            j = int(wrong[0])
            self.examples.append({**labels, "element": j, "got": int(got[j]) if j < len(got) else None,
                                  "want": int(want[j]), "elements_wrong": len(wrong)})
        return False
