"""Local files read line by line (JSON Lines, CSV, text) or in batches (Parquet, a JSON array whole), rather
than by `datasets`' json/csv builders: those abort the whole file on one malformed line and name positions in
a temporary repaired copy. Here a malformed line or row, or one that is not valid UTF-8, is skipped with its
line number in the user's own file, and nothing is copied or cached."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

from latentbridge.data.rows.row_source import RowSource
from latentbridge.data.rows.skips import MAX_JSON_DEPTH
from latentbridge.errors import UserError

LOCAL_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents longer than csv's default 128 kB per field


class LocalRows(RowSource):
    """The rows of local files of one type (json, csv, text, parquet), file after file."""

    def __init__(self, builder: str, files: list[str], field_name: str):
        self.builder, self.files, self.field_name = builder, files, field_name
        self.unit = "row" if builder == "parquet" else "line"
        self._arrays: set[str] = set()  # JSON files holding one array: their rows are numbered by item

    def unit_of(self, file: str) -> str:
        return "item" if file in self._arrays else self.unit

    def _records(self) -> Iterator[tuple[str, int, Any]]:
        read = {"json": self._json, "csv": self._csv, "text": self._text, "parquet": self._parquet}[self.builder]
        for file in self.files:
            yield from ((file, line, raw) for line, raw in read(file))

    def count(self) -> int:
        if self.builder == "parquet":
            import pyarrow.parquet as pq  # pyarrow takes a second to import; the recipe imports this module

            return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        return super().count()

    def columns(self) -> list[str]:
        if self.builder == "csv":
            for file in self.files:
                with open(file, encoding="utf-8", errors="replace", newline="") as f:
                    return next(csv.reader(f), [])
        return super().columns()

    def _parse(self, raw: Any) -> tuple[Optional[dict[str, Any]], str]:
        if self.builder == "json":
            return _parse_json_line(raw)
        if self.builder == "text":
            try:
                return {"text": raw.decode("utf-8").rstrip("\r\n")}, ""
            except UnicodeDecodeError:
                return None, "invalid_utf8"
        return raw  # csv and parquet records come parsed (or with their reason) from the reader

    @staticmethod
    def _text(file: str) -> Iterator[tuple[int, bytes]]:
        with open(file, "rb") as f:
            for line, data in enumerate(f, 1):
                if data.strip():
                    yield line, data.removeprefix(b"\xef\xbb\xbf") if line == 1 else data

    def _json(self, file: str) -> Iterator[tuple[int, Any]]:
        with open(file, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):  # a JSON document holding an array of rows, not JSON Lines
            self._arrays.add(file)
            yield from enumerate(self._json_array(file), 1)
            return
        yield from self._text(file)

    def _json_array(self, file: str) -> list[Any]:
        try:
            data = json.loads(Path(file).read_bytes().decode("utf-8", errors="surrogateescape"))
        except (ValueError, RecursionError) as error:
            why = error if isinstance(error, ValueError) else "nested too deeply to parse"
            raise UserError(f"{self.field_name}: {file} is neither JSON Lines nor a valid JSON array "
                            f"({why}).") from None
        return [_item_bytes(item) for item in data]

    @staticmethod
    def _csv(file: str) -> Iterator[tuple[int, tuple[Optional[dict[str, Any]], str]]]:
        # surrogateescape keeps invalid bytes visible, so the row holding them is skipped, not the file
        with open(file, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            end = reader.line_num
            while True:
                start = end + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    end = reader.line_num
                    yield start, (None, "malformed_csv")
                    continue
                end = reader.line_num
                if not record:  # a blank line: no row
                    continue
                if len(record) != len(header):
                    yield start, (None, "malformed_csv")
                elif any(_has_surrogates(v) for v in record):
                    yield start, (None, "invalid_utf8")
                else:
                    yield start, (dict(zip(header, record)), "")

    @staticmethod
    def _parquet(file: str) -> Iterator[tuple[int, tuple[dict[str, Any], str]]]:
        import pyarrow.parquet as pq  # pyarrow takes a second to import; the recipe imports this module

        row = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
            for values in batch.to_pylist():
                row += 1
                yield row, (values, "")


def _item_bytes(item: Any) -> bytes:
    """One row of a JSON array as the bytes of a JSON line, its invalid bytes kept (so the row is skipped as
    invalid UTF-8); a JSON-escaped lone surrogate stays escaped, to be skipped as one."""
    try:
        return json.dumps(item, ensure_ascii=False).encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return json.dumps(item).encode("ascii")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text) if not text.isascii() else False


def _parse_json_line(raw: bytes) -> tuple[Optional[dict[str, Any]], str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_utf8"
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        return None, "nested_too_deep"
    try:
        values = json.loads(text)
    except ValueError:
        return None, "malformed_json"
    if not isinstance(values, dict):
        return None, "malformed_json"
    if _holds_lone_surrogate(values):  # JSON may escape one (`"\ud800"`); no tokenizer can encode it
        return None, "lone_surrogate"
    return values, ""


def _nesting_depth(text: str) -> int:
    """An upper bound of the nesting of JSON `text` (brackets inside strings count too): cheap, and it keeps
    200,000 `[` from json's recursive parser."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in the parsed JSON `value` holds a surrogate code point (walked without
    recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
