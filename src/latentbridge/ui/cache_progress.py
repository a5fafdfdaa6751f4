"""Progress of long data jobs (building the cache) on the terminal: a Rich bar, or plain lines for CI,
pipes and nohup. Both implement data/progress.py's `Progress`; `console_progress()` picks one.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichBar, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from latentbridge.data.progress import Progress


class LineProgress:
    """One line at start, one every `every_s` seconds, one at the end: `preprocess dialogue/train 512/2000 (25%) 310/s`."""

    def __init__(self, stream: Optional[TextIO] = None, every_s: float = 10.0):
        self.stream, self.every_s = stream or sys.stderr, every_s
        self.description, self.total, self.done, self.t0, self.last = "", 0, 0, 0.0, 0.0
        self.printed = -1

    def _line(self) -> None:
        self.printed = self.done
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total}" if self.total is not None else ""
        print(f"{self.description} {self.done}{of}{pct} {rate:.0f}/s", file=self.stream, flush=True)

    def start(self, description: str, total: Optional[int]) -> None:
        self.description, self.total, self.done = description, total, 0
        self.t0 = self.last = time.perf_counter()
        self._line()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            self._line()

    def finish(self) -> None:
        if self.printed != self.done:
            self._line()


class RichProgress:
    """A Rich progress bar (one task at a time) for interactive terminals."""

    def __init__(self):
        self._bar = RichBar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._task = None

    def start(self, description: str, total: Optional[int]) -> None:
        if self._task is None:
            self._bar.start()
        else:
            self._bar.update(self._task, visible=True)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.refresh()

    def close(self) -> None:
        self._bar.stop()


def console_progress(use_rich: bool = True, stream: Optional[TextIO] = None, every_s: float = 10.0) -> Progress:
    """Rich when `use_rich` and the stream is a terminal, plain lines (one every `every_s`) otherwise."""
    stream = stream or sys.stderr
    if use_rich and getattr(stream, "isatty", lambda: False)():
        return RichProgress()
    return LineProgress(stream, every_s)
