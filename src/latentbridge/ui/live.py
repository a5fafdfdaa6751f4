"""Output while a live display (a progress bar, the training dashboard) holds the bottom of the terminal.

Rich redraws a live display in place, so anything else written to the terminal meanwhile must go through the
same Console, which prints it above the display. Rich's Live redirects `print` and `warnings` (sys.stdout and
sys.stderr); `logging_through(console)` does the same for logging handlers that hold the terminal's stream
(transformers' own handler keeps the sys.stderr it was created with, so redirecting sys.stderr misses it).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.file_proxy import FileProxy


def _terminal_handlers() -> list[logging.StreamHandler]:
    streams = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return [h for logger in loggers for h in logger.handlers
            if type(h) is logging.StreamHandler and id(h.stream) in streams]


@contextmanager
def logging_through(console: Console) -> Iterator[None]:
    """While inside: log records bound for the terminal are printed by `console` (above its live display)."""
    swapped = [(handler, handler.setStream(FileProxy(console, handler.stream))) for handler in _terminal_handlers()]
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.flush()
            handler.setStream(stream)
