"""Ctrl-C for live views (``top``, ``tail -f``): stop between refreshes, never mid-query.

A ``KeyboardInterrupt`` raised while DuckDB scans comes back as a DuckDB error (and a
traceback); turning SIGINT into an event that the loop checks between refreshes ends the view
cleanly whenever the user presses it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["until_interrupted"]


@contextmanager
def until_interrupted() -> Iterator[threading.Event]:
    """An event that Ctrl-C sets while the block runs; the previous handler comes back after."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
