"""Render the CLI reference (docs/cli.md) from the argparse parser itself: `python -m doping.clidoc`."""

from __future__ import annotations

import argparse
import os
import sys


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def render() -> str:
    from doping.cli import build_parser

    os.environ["COLUMNS"] = "100"
    root = build_parser()
    out = ["# CLI reference", "", "Generated from the parser by `python -m doping.clidoc > docs/cli.md`; "
           "a test keeps it in sync.", "", "```", root.format_help().rstrip(), "```"]

    def walk(prefix, parser):
        for name, sub in _subparsers(parser):
            out.extend(["", f"## `{prefix} {name}`", "", "```", sub.format_help().rstrip(), "```"])
            walk(f"{prefix} {name}", sub)

    walk("doping", root)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
