"""Rows of one dataset split, read as a stream, with every row that cannot be used counted where it is.

    split_rows(location, field, split, hf_cache_dir, subset) -> RowSource
        .columns()     the column names (of the first row that parses, for JSON Lines)
        .count()       positions in the split (rows, bad ones included): a pass over local files, len() on the hub
        .rows(skips)   Row(position, values, file, line) for each row that parses; the others go to `skips`
    Skips              rows left out, per reason, and per user file with the 1-based lines of the first few

Local JSON Lines, CSV and text files are read here, line by line, rather than by `datasets`' json/csv
builders: those abort the whole file on one malformed line and name positions in a temporary repaired
copy. Here a malformed JSON line or CSV row, or a line that is not valid UTF-8, is skipped and reported
with its line number in the user's own file, and nothing is copied or cached. Parquet files are read in
batches with pyarrow; hub datasets through `datasets` (from its local cache when the hub is unreachable).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional

import huggingface_hub.constants as hub_constants

from latentbridge.errors import UserError

LOCAL_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "test": ("test",), "train": ("train",)}
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
LOCAL_HINT = "run with `--preset tiny` (bundled offline corpus) or point the field at a local file or folder"
FIRST_LINES = 5  # line numbers kept per file and reason
MAX_JSON_DEPTH = 100  # rows are flat records: deeper nesting is a broken line, and Python's parser recurses
REASONS = {"malformed_json": "malformed JSON", "malformed_csv": "malformed CSV row", "invalid_utf8": "invalid UTF-8",
           "lone_surrogate": "lone surrogate escape (such as \\ud800, not a character)",
           "nested_too_deep": f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
           "missing_or_empty_text": "missing or empty text", "too_short_to_split": "too short to split"}
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents longer than csv's default 128 kB per field


# --- what was skipped -------------------------------------------------------------------------


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


# --- locating a split ----------------------------------------------------------------------------


class Row(NamedTuple):
    position: int  # 0-based among the split's rows, bad ones included (the same on every read)
    values: dict[str, Any]
    file: str  # the user's file (or "<hub name> (split)")
    line: int  # 1-based line in the file (row, for parquet and hub datasets)


def _looks_like_path(location: str) -> bool:
    return (location.startswith((".", "/", "~")) or Path(location).suffix.lower() in LOCAL_EXTENSIONS
            or location.count("/") > 1 or os.sep != "/" and os.sep in location)


def local_files(path: Path, field_name: str) -> tuple[str, dict[str, list[str]]]:
    """(builder, {split: [files]}) for a local file or folder; split names from file names in a folder."""
    if path.is_file():
        builder = LOCAL_EXTENSIONS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"{field_name}: {path} has an unsupported extension {path.suffix!r}; "
                            f"expected one of {', '.join(sorted(LOCAL_EXTENSIONS))}.")
        return builder, {"train": [str(path)]}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise UserError(f"{field_name}: folder {path} holds no data files "
                        f"({', '.join(sorted(LOCAL_EXTENSIONS))}).")
    builders = {LOCAL_EXTENSIONS[p.suffix.lower()] for p in files}
    if len(builders) > 1:
        raise UserError(f"{field_name}: folder {path} mixes file types {sorted(builders)}; keep one type per folder.")
    splits: dict[str, list[str]] = {}
    for p in files:  # train.jsonl, validation-00000-of-00001.parquet, ...; other names: all train
        stem = p.stem.lower().split("-")[0].split(".")[0]
        split = next((s for s, aliases in SPLIT_ALIASES.items() if stem in aliases), None)
        splits.setdefault(split or "", []).append(str(p))
    if "" in splits:
        if len(splits) > 1:
            names = ", ".join(Path(f).name for f in splits[""][:5])
            raise UserError(f"{field_name}: folder {path} mixes split files (train/validation/test) with "
                            f"files named after no split ({names}); rename them or point at one file.")
        splits = {"train": splits.pop("")}
    return builders.pop(), splits


def pick_split(available: Any, wanted: str, field_name: str, location: str) -> str:
    """The name in `available` (split names) that `wanted` means (aliases: validation = valid/val/dev)."""
    if wanted in available:
        return wanted
    for aliases in SPLIT_ALIASES.values():
        if wanted in aliases:
            for alias in aliases:
                if alias in available:
                    return alias
    raise UserError(f"{field_name}: {location!r} has no split {wanted!r}; it has {sorted(available)}. "
                    f"Set the split flag (--train-split/--validation-split/--test-split) to one of those.")


def split_names(location: str, field_name: str, hf_cache_dir: Optional[str] = None,
                subset: Optional[str] = None) -> list[str]:
    """The split names of a dataset (local: from its file names)."""
    path = Path(location).expanduser()
    if path.exists():
        return list(local_files(path, field_name)[1])
    return list(open_hub_dataset(location, field_name, hf_cache_dir, subset))


def split_rows(location: str, field_name: str, split: str, hf_cache_dir: Optional[str] = None,
               subset: Optional[str] = None) -> "RowSource":
    """The rows of one split of a hub name or local file/folder; UserError naming `field_name` when it cannot be had."""
    path = Path(location).expanduser()
    if path.exists():
        builder, files = local_files(path, field_name)
        return LocalRows(builder, files[pick_split(files, split, field_name, location)], field_name)
    dsd = open_hub_dataset(location, field_name, hf_cache_dir, subset)
    name = pick_split(dsd, split, field_name, location)
    return HubRows(dsd[name], f"{location} ({name})")


# --- the hub --------------------------------------------------------------------------------------


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or \
            os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0].split(":")[0]
    result: list[bool] = []

    def probe() -> None:  # in a thread: name resolution ignores the socket timeout
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Make `datasets` use only its local cache (no network retries that hang)."""
    import datasets.config  # datasets takes seconds to import; the recipe imports this module

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def open_hub_dataset(location: str, field_name: str, hf_cache_dir: Optional[str] = None,
                     subset: Optional[str] = None):
    """A `datasets.DatasetDict` for a hub name (from the local cache when offline); UserError when it cannot be had."""
    import datasets  # takes seconds to import; the recipe imports this module

    datasets.disable_progress_bars()
    if _looks_like_path(location) or not HUB_NAME.match(location):
        raise UserError(f"{field_name}: local path {location!r} does not exist "
                        f"(resolved to {Path(location).expanduser().resolve()}).")
    online = _hub_reachable()
    try:
        with (contextlib.nullcontext() if online else _offline()):
            return datasets.load_dataset(location, subset, cache_dir=hf_cache_dir)
    except Exception as e:
        why = "the hub is unreachable and it is not in the local cache" if not online else \
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"{field_name}: cannot load dataset {location!r} ({why}). To work offline, "
                        f"{LOCAL_HINT}.") from e


# --- reading ----------------------------------------------------------------------------------------


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


class HubRows(RowSource):
    """A split of a hub dataset (arrow, read in batches)."""

    unit = "row"

    def __init__(self, ds: Any, name: str):
        self.ds, self.name = ds, name

    def count(self) -> int:
        return len(self.ds)

    def columns(self) -> list[str]:
        return list(self.ds.column_names)

    def _records(self) -> Iterator[tuple[str, int, Any]]:
        line = 0
        for batch in self.ds.iter(batch_size=1024):
            names = list(batch)
            for values in zip(*batch.values()):
                line += 1
                yield self.name, line, dict(zip(names, values))


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
