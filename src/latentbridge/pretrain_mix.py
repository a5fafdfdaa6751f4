"""The `pretrain_mix` field: which texts stages 1-2 pretrain on, and in what proportions (seed 002's mixes).

A mix is a list of sources, each with a name, a path (hub name, local file or folder, or the word
`dataset`: the task dataset's own input and target texts), an optional subset and split, a
`text_field` or `text_template`, a sampling weight and an optional cap on its documents. It is written

    inline                      "dataset:0.3,data/wiki.jsonl:0.7"     SOURCE[:WEIGHT],... (weights default to 1)
    a file                      mixes.yaml                             a list of sources, or {"datasets": [...]}
    a named mix of a file       mixes.yaml:science_mix                 seed 002's {"data_mixes": {NAME: {...}}}

Relative paths in a file are relative to the file's folder. Stdlib only (YAML deferred): the Config checks
the syntax of an inline mix when it is built; `load_mix` reads a file and checks everything else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from latentbridge.text_template import template_fields

TASK_DATASET = "dataset"  # as a source's path: the task dataset's own input and target texts
MIX_FILE_SUFFIXES = (".yaml", ".yml", ".json")
# `format` and `streaming` are seed 002's keys: a format must agree with the file's extension (which decides);
# `streaming` is accepted as is, since every source is read as a stream here
SOURCE_KEYS = ("name", "path", "subset", "split", "text_field", "text_template", "weight", "cap",
               "format", "streaming")
FORMATS = {"json": (".json", ".jsonl"), "csv": (".csv",), "text": (".txt",), "parquet": (".parquet",)}
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class MixError(ValueError):
    """What is wrong with a mix, in one sentence (the caller names the field)."""


@dataclass(frozen=True)
class MixSource:
    """One source of a pretraining mix."""

    name: str
    path: str  # hub name, local path (a file's relative paths resolved), or TASK_DATASET
    weight: float = 1.0
    subset: Optional[str] = None
    split: Optional[str] = None
    text_field: Optional[str] = None
    text_template: Optional[str] = None
    cap: Optional[int] = None

    @property
    def is_task_dataset(self) -> bool:
        return self.path == TASK_DATASET


def _file_part(value: str) -> tuple[str, Optional[str]]:
    """("mixes.yaml", "science_mix") for "mixes.yaml:science_mix"; the name is None without a suffix."""
    head, sep, tail = value.rpartition(":")
    if sep and head.lower().endswith(MIX_FILE_SUFFIXES) and tail and "/" not in tail:
        return head, tail
    return value, None


def names_a_mix_file(value: str) -> bool:
    """Whether `value` names a YAML mix file, or a JSON file that holds a mix (not pretraining data)."""
    path, _ = _file_part(value.strip())
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    return suffix == ".json" and _holds_mix(Path(path).expanduser())


def _holds_mix(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if isinstance(data, dict):
        return "data_mixes" in data or "datasets" in data
    return isinstance(data, list) and bool(data) and all(isinstance(d, dict) and "path" in d for d in data)


def _weight(text: str, entry: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise MixError(f"the weight of {entry!r} is {text!r}, not a number") from None
    return weight


def _inline_name(path: str) -> str:
    if path == TASK_DATASET:
        return TASK_DATASET
    tail = Path(path.rstrip("/")).name
    return Path(tail).stem if Path(tail).suffix else tail


def parse_inline(value: str) -> tuple[MixSource, ...]:
    """The sources of an inline mix `SOURCE[:WEIGHT],...`, checked (MixError)."""
    sources = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            raise MixError("an entry is empty (two commas in a row, or a trailing comma)")
        path, sep, weight = entry.rpartition(":")
        if not sep or not re.fullmatch(r"[\d.eE+-]+", weight):
            path, weight = entry, "1"
        sources.append(MixSource(_inline_name(path), path, _weight(weight, entry)))
    check_sources(sources)
    return tuple(sources)


def check_sources(sources: list[MixSource] | tuple[MixSource, ...]) -> None:
    """Weights positive, names unique and plain, text_field or text_template (not both), caps positive."""
    if not sources:
        raise MixError("it has no sources")
    seen: set[str] = set()
    for s in sources:
        if not _NAME.match(s.name):
            raise MixError(f"source name {s.name!r} is not a plain name (letters, digits, '_', '-', '.')")
        if s.name in seen:
            raise MixError(f"two sources are called {s.name!r}; give them different names (a mix file sets `name`)")
        seen.add(s.name)
        if not s.weight > 0 or s.weight != s.weight or s.weight == float("inf"):
            raise MixError(f"source {s.name!r} has weight {s.weight}; weights must be positive numbers")
        if s.cap is not None and s.cap <= 0:
            raise MixError(f"source {s.name!r} has cap {s.cap}; a cap must be a positive number of documents")
        if s.text_field and s.text_template:
            raise MixError(f"source {s.name!r} sets both text_field and text_template; keep one")
        if s.is_task_dataset and (s.text_field or s.text_template or s.subset or s.split):
            raise MixError(f"source {s.name!r} is the task dataset, whose texts come from its own columns: "
                           "drop text_field, text_template, subset and split")
        if s.text_template:
            try:
                template_fields(s.text_template)
            except ValueError as error:
                raise MixError(f"source {s.name!r} has text_template {s.text_template!r}: {error}") from None


def syntax_problem(value: str) -> Optional[str]:
    """What is wrong with the value itself, checked when the Config is built (files are read at use)."""
    path, _ = _file_part(value.strip())
    if Path(path).suffix.lower() in MIX_FILE_SUFFIXES:
        return None  # a mix file (or a JSON data file): read when the data is loaded
    try:
        parse_inline(value)
    except MixError as error:
        return str(error)
    return None


def file_problem(value: str) -> Optional[str]:
    """What is wrong with the mix file `value` names (missing, unreadable, malformed); None when it names none
    or a good one. Checked where a user gives the value, not when a saved config is read back."""
    path, _ = _file_part(value.strip())
    if Path(path).suffix.lower() not in MIX_FILE_SUFFIXES:
        return None
    if not Path(path).expanduser().is_file():
        return f"the mix file {path} does not exist"
    try:
        load_mix(value)
    except (MixError, OSError, UnicodeDecodeError) as error:
        return str(error)
    return None


def load_mix(value: str) -> tuple[MixSource, ...]:
    """The sources `value` names: a mix file (FILE or FILE:NAME) or an inline list. MixError when wrong."""
    if names_a_mix_file(value):
        path, name = _file_part(value.strip())
        return _read_mix_file(Path(path).expanduser(), name)
    return parse_inline(value)


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise MixError(f"the mix file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as error:
            raise MixError(f"{path} is not valid JSON ({error})") from None
    import yaml  # only mix files in YAML need it; --help stays lighter

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MixError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None


def _read_mix_file(path: Path, name: Optional[str]) -> tuple[MixSource, ...]:
    data = _read_file(path)
    if isinstance(data, dict) and "data_mixes" in data:
        mixes = data["data_mixes"]
        if not isinstance(mixes, dict) or not mixes:
            raise MixError(f"{path}: data_mixes must map mix names to mixes")
        if name is None:
            if len(mixes) > 1:
                raise MixError(f"{path} holds several mixes ({', '.join(mixes)}); pick one as {path}:NAME")
            name = next(iter(mixes))
        if name not in mixes:
            raise MixError(f"{path} has no mix {name!r}; it has {', '.join(mixes)}")
        data = mixes[name]
    elif name is not None:
        raise MixError(f"{path} has no data_mixes, so {name!r} names nothing; drop ':{name}'")
    if isinstance(data, dict):
        data = data.get("datasets")
    if not isinstance(data, list):
        raise MixError(f"{path}: expected a list of sources (or a mapping with `datasets` or `data_mixes`)")
    sources = tuple(_source(entry, k, path) for k, entry in enumerate(data, 1))
    check_sources(sources)
    return sources


def _source(entry: Any, number: int, mix_file: Path) -> MixSource:
    where = f"{mix_file} source {number}"
    if not isinstance(entry, dict):
        raise MixError(f"{where} is not a mapping of keys ({', '.join(SOURCE_KEYS)})")
    unknown = sorted(set(entry) - set(SOURCE_KEYS))
    if unknown:
        raise MixError(f"{where} has unknown keys {unknown}; known: {', '.join(SOURCE_KEYS)}")
    if not isinstance(entry.get("path"), str) or not entry["path"].strip():
        raise MixError(f"{where} needs a `path`: a hub name, a local file or folder, or `{TASK_DATASET}`")
    path = _resolve(entry["path"].strip(), mix_file.parent)
    _check_format(entry.get("format"), path, where)
    texts = {k: entry.get(k) for k in ("subset", "split", "text_field", "text_template")}
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise MixError(f"{where}: {key} must be a string")
    cap = entry.get("cap")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool)):
        raise MixError(f"{where}: cap must be a whole number of documents")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise MixError(f"{where}: weight must be a number")
    return MixSource(str(entry.get("name") or _inline_name(path)), path, float(weight), cap=cap, **texts)


def _resolve(path: str, folder: Path) -> str:
    """A relative local path of a mix file, against the file's folder; hub names and `dataset` unchanged."""
    if path == TASK_DATASET or Path(path).expanduser().is_absolute():
        return path
    local = folder / path
    return str(local) if local.exists() or path.startswith(".") or Path(path).suffix else path


def _check_format(fmt: Any, path: str, where: str) -> None:
    """Seed 002's `format` key: accepted when it agrees with the file's extension (which decides)."""
    if fmt is None or not Path(path).suffix:
        return
    if fmt not in FORMATS:
        raise MixError(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    if Path(path).suffix.lower() not in FORMATS[fmt]:
        raise MixError(f"{where}: format {fmt!r} does not match the extension of {path}")
