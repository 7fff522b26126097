"""Headless matplotlib for every plot doping writes (reports, sweeps, benches)."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed), with mathtext
    off: labels carry names from packs and runs, drawn as plain text (a ``$`` in a layer name is a
    dollar sign, never a formula that fails to parse after a whole simulation)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt
