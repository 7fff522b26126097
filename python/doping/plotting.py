"""Headless matplotlib for every plot doping writes (reports, sweeps, benches)."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(text: str) -> str:
    """A name from a pack or run as plot text: every ``$`` escaped, so that matplotlib draws it
    as a dollar sign instead of parsing a formula (which fails, after a whole simulation, on
    ``$\\frac{1}{$``). Axis tick labels keep their mathtext."""
    return str(text).replace("$", r"\$")
