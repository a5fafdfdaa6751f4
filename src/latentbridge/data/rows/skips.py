"""Rows left out while reading a split, counted per reason and per user file, with the line numbers of the
first few, and how each reason reads in a message."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

FIRST_LINES = 5  # line numbers kept per file and reason
MAX_JSON_DEPTH = 100  # rows are flat records: deeper nesting is a broken line, and Python's parser recurses
REASONS = {"malformed_json": "malformed JSON", "malformed_csv": "malformed CSV row", "invalid_utf8": "invalid UTF-8",
           "lone_surrogate": "lone surrogate escape (such as \\ud800, not a character)",
           "nested_too_deep": f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
           "missing_or_empty_text": "missing or empty text", "too_short_to_split": "too short to split"}


@dataclass
class Skips:
    """Rows left out while reading a split: `counts` per reason, and `where` per user file and reason, with
    the 1-based line (or row) numbers of the first few: {file: {reason: {"count", "unit", "first"}}}."""

    counts: Counter = field(default_factory=Counter)
    where: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, reason: str, file: Optional[str] = None, line: Optional[int] = None, unit: str = "line") -> None:
        self.counts[reason] += 1
        if file is None:
            return
        entry = self.where.setdefault(file, {}).setdefault(reason, {"count": 0, "unit": unit, "first": []})
        entry["count"] += 1
        if line is not None and len(entry["first"]) < FIRST_LINES:
            entry["first"].append(line)

    def update(self, other: "Skips", prefix: str = "") -> None:
        """Add `other`'s skips, its reasons counted as `prefix` + reason (e.g. "wikitext:")."""
        for reason, n in other.counts.items():
            self.counts[prefix + reason] += n
        for file, reasons in other.where.items():
            for reason, entry in reasons.items():
                mine = self.where.setdefault(file, {}).setdefault(reason, {"count": 0, "unit": entry["unit"],
                                                                           "first": []})
                mine["count"] += entry["count"]
                mine["first"] = (mine["first"] + entry["first"])[:FIRST_LINES]

    def describe(self) -> list[str]:
        """One line per file: `data/train.jsonl: 2 malformed JSON (lines 4, 9), 1 missing or empty text (line 12)`."""
        lines = []
        for file, reasons in self.where.items():
            parts = []
            for reason, e in reasons.items():
                shown = ", ".join(map(str, e["first"])) + (", ..." if e["count"] > len(e["first"]) else "")
                unit = e["unit"] + ("s" if len(e["first"]) > 1 else "")
                parts.append(f"{e['count']} {REASONS.get(reason, reason)}" + (f" ({unit} {shown})" if shown else ""))
            lines.append(f"{file}: {', '.join(parts)}")
        return lines
