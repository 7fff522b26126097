"""Progress of long stages (export, simulator builds) as ``doping: ...`` lines on stderr. The CLI
turns it on when stderr is a terminal, or when ``DOPING_PROGRESS=1``; a library caller sees nothing
unless it configures the ``doping.progress`` logger."""

from __future__ import annotations

import logging
import os
import sys

PROGRESS = logging.getLogger("doping.progress")


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is emitted (it may be replaced meanwhile)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def enable() -> None:
    """Progress lines on stderr if it is a terminal or ``$DOPING_PROGRESS`` is 1 (once per process)."""
    wanted = os.environ.get("DOPING_PROGRESS", "1" if sys.stderr.isatty() else "0") == "1"
    if wanted and not any(isinstance(h, _Stderr) for h in PROGRESS.handlers):
        handler = _Stderr(sys.stderr)
        handler.setFormatter(logging.Formatter("doping: %(message)s"))
        PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO if wanted else logging.WARNING)
    PROGRESS.propagate = False
