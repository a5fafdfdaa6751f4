"""Stopping cleanly on a signal: the first Ctrl-C (or SIGTERM, e.g. a cluster preemption) asks the loop to finish
its step, checkpoint and exit; a second one gets the usual behaviour (KeyboardInterrupt / termination)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While `caught()` is active, the first SIGINT or SIGTERM sets `requested` and is said through `say`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.requested = False
        self._say = say

    @contextmanager
    def caught(self) -> Iterator[None]:
        """Catch the signals (only the main thread can: elsewhere nothing is caught); the previous handlers
        come back on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum, frame):
            self.requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self._say(f"{name}: saving a checkpoint after this step (again to abort)")
            signal.signal(signum, previous[signum])

        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
