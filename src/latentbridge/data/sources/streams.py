"""The examples a cache is built from, as streams: `Example` (id, source, input text, target text, where it
was read) and `SplitStream`, which reads its rows lazily and counts what it leaves out; the text cleaning and
column lookup the dialogue and pretraining readers share."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from latentbridge.data.rows import RowSource, Skips


@dataclass(frozen=True)
class Example:
    """One (input text -> target text) pair before encoding."""

    id: str
    source: str  # "dialogue" | "wikitext" | "arxiv" | "english" | a mix source's name
    input_text: str
    target_text: str
    # where it was read: the user's file, the 1-based line (row, item) in it, and what that number counts
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)
    unit: str = field(default="line", compare=False)


class SplitStream:
    """The examples of one split, read lazily, once per iteration.

    Each pass refills `skipped` (rows left out, with where they were) and `realised` (examples per source).
    `expected` is an upper bound on the count (for progress bars); `examples` lists them all (small splits).
    """

    def __init__(self, read: Callable[[Skips], Iterator[Example]], source_names: tuple[str, ...],
                 expected: Callable[[], Optional[int]] = lambda: None,
                 weights: Optional[dict[str, float]] = None):
        self._read, self._expected = read, expected
        self.source_names, self.weights = source_names, weights
        self.skipped, self.realised = Skips(), Counter()

    def __iter__(self) -> Iterator[Example]:
        self.skipped, self.realised = Skips(), Counter()
        for example in self._read(self.skipped):
            self.realised[example.source] += 1
            yield example

    @functools.cached_property
    def expected(self) -> Optional[int]:
        return self._expected()

    @functools.cached_property
    def examples(self) -> list[Example]:
        return list(self)


def clean_text(value: Any) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def find_column(columns: list[str], candidates: tuple[str, ...]) -> Optional[str]:
    lower = {c.lower(): c for c in columns}
    return next((lower[name] for name in candidates if name in lower), None)


def string_columns(rows: RowSource) -> list[str]:
    first = next(rows.rows(Skips()), None)
    return [k for k, v in first.values.items() if isinstance(v, str)] if first else []
