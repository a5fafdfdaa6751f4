"""What data functions report on long jobs (building the cache): any object with `start(description, total)`,
`advance(n)` and `finish()`; the total is an upper bound (skipped rows never advance) or None when unknown.
The screen versions (a Rich bar, plain lines) are in ui/cache_progress.py; `NullProgress` says nothing (the
default, and tests).
"""

from __future__ import annotations

from typing import Optional, Protocol


class Progress(Protocol):
    def start(self, description: str, total: Optional[int]) -> None: ...  # total: None when unknown
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    def start(self, description: str, total: Optional[int]) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass
