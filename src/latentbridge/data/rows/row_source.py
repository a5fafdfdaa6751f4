"""A split's rows as a stream: `RowSource` (what every reader gives) and the `Row` it yields."""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Optional

from latentbridge.data.rows.skips import Skips


class Row(NamedTuple):
    position: int  # 0-based among the split's rows, bad ones included (the same on every read)
    values: dict[str, Any]
    file: str  # the user's file (or "<hub name> (split)")
    line: int  # 1-based line in the file (row, for parquet and hub datasets)


class RowSource:
    """The rows of one split. Subclasses give `_records` (every position, raw) and `_parse` (raw -> values)."""

    unit = "line"
    files: list[str] = []  # the local files read, in order (none for a hub dataset)

    def _records(self) -> Iterator[tuple[str, int, Any]]:  # (file, line, raw record)
        raise NotImplementedError

    def _parse(self, raw: Any) -> tuple[Optional[dict[str, Any]], str]:  # (values, or None and the reason)
        return raw, ""

    def count(self) -> int:
        return sum(1 for _ in self._records())

    def unit_of(self, file: str) -> str:
        """What a row's number counts in `file`: "line", "row" (parquet, hub) or "item" (a JSON array)."""
        return self.unit

    def rows(self, skips: Skips) -> Iterator[Row]:
        for position, (file, line, raw) in enumerate(self._records()):
            values, reason = self._parse(raw)
            if values is None:
                skips.add(reason, file, line, self.unit_of(file))
                continue
            yield Row(position, values, file, line)

    def columns(self) -> list[str]:
        """The column names: those of the first row that parses."""
        first = next(self.rows(Skips()), None)
        return list(first.values) if first else []
