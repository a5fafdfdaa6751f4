"""Progress of long data jobs (building the cache) on the terminal: a Rich bar, or plain lines for CI,
pipes and nohup. Both implement data/build_progress.py's `Progress`; `console_progress()` picks one.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from typing import Optional, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichBar, TextColumn, TimeElapsedColumn
from rich.table import Column

from latentbridge.data.build_progress import Progress
from latentbridge.ui.live import logging_through


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
        """The last line, at the real total (the total given at the start is an upper bound)."""
        short = self.total != self.done
        self.total = self.done
        if short or self.printed != self.done:
            self._line()

    def close(self) -> None:
        pass


class RichProgress:
    """A Rich progress bar per job, drawn on `console`: notes printed on that console (and warnings, logging)
    appear above it, not glued to it. Each job's bar stops at its end, showing its real total: the total given at
    the start is an upper bound (skipped rows never advance)."""

    def __init__(self, console: Optional[Console] = None):
        self.console = console or Console()
        self._bar: Optional[RichBar] = None
        self._task = None
        self._routing = ExitStack()

    def start(self, description: str, total: Optional[int]) -> None:
        self.finish()
        self._bar = RichBar(TextColumn("{task.description}", table_column=Column(ratio=1, overflow="ellipsis",
                                                                                  no_wrap=True)),
                            BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=self.console, transient=False, redirect_stdout=True, redirect_stderr=True)
        self._task = self._bar.add_task(description, total=total)
        self._routing.enter_context(logging_through(self.console))  # before the bar replaces sys.stderr
        self._bar.start()

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is None:
            return
        done = self._bar.tasks[0].completed
        self._bar.update(self._task, total=done, completed=done)
        self._bar.stop()
        self._routing.close()  # after the bar has put sys.stderr back
        self._bar = self._task = None

    def close(self) -> None:
        self.finish()


def console_progress(use_rich: bool = True, stream: Optional[TextIO] = None, every_s: float = 10.0,
                     console: Optional[Console] = None) -> Progress:
    """A Rich bar on `console` (default: a new one) when `use_rich` and it is a terminal, plain lines on `stream`
    (default stderr; one every `every_s`) otherwise. Pass the console the rest of the run prints on, so that its
    notes appear above the bar."""
    stream = stream or sys.stderr
    if console is None:
        if not getattr(stream, "isatty", lambda: False)():
            return LineProgress(stream, every_s)
        console = Console(file=stream)
    if use_rich and console.is_terminal and not console.is_dumb_terminal:
        return RichProgress(console)
    return LineProgress(stream, every_s)
