"""Load the dialogue dataset and the pretraining text, from a hub name or a local file/folder.

Everything here returns plain Python `Example`s (id, source, input text, target text) plus counts
of skipped rows. The orchestration layer builds a `DataSpec` from the config; nothing in this file
reads the config module.

    dialogue:  (dialogue -> summary)                  split names from the spec (train/validation/test);
               columns named by `Columns` (fields, or a template for the input), else found by name
    pretrain:  document -> (segment A -> segment B)   split at a sentence boundary near the middle;
               sources without a validation split give `validation_fraction` of their documents to it.
               A `task_texts` source takes its documents from the dialogue dataset itself: every input
               and target text of its train (and validation) split.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from latentbridge.errors import UserError
from latentbridge.text_template import render_template, require_fields, template_fields

LOCAL_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
TEXT_FIELDS = ("text", "content", "abstract", "article", "document", "body", "passage", "raw", "sentence")
DIALOGUE_FIELDS = ("dialogue", "dialog", "conversation", "document", "article", "text", "source")
SUMMARY_FIELDS = ("summary", "highlights", "target", "abstract")
SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "test": ("test",), "train": ("train",)}
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
LOCAL_HINT = "run with `--preset tiny` (bundled offline corpus) or point the field at a local file or folder"


@dataclass(frozen=True)
class Example:
    """One (input text -> target text) pair before encoding."""

    id: str
    source: str  # "dialogue" | "wikitext" | "arxiv" | "english" | ...
    input_text: str
    target_text: str


@dataclass(frozen=True)
class PretrainSource:
    """One pretraining source: where it is, the config field naming it, and its document cap."""

    name: str  # short name stored in the cache: "wikitext", "arxiv", "english", "dataset"
    location: str  # hub name or local path
    field: str  # config field, for error messages
    max_samples: Optional[int] = None  # cap on training pairs taken from this source
    task_texts: bool = False  # the dialogue dataset's own input and target texts (location = spec.dataset)


@dataclass(frozen=True)
class Columns:
    """Which columns of the dialogue dataset give a row's input and target text (None: found by name)."""

    input_field: Optional[str] = None
    target_field: Optional[str] = None
    input_template: Optional[str] = None  # a format string over the row's columns, instead of input_field


@dataclass(frozen=True)
class DataSpec:
    """Everything the data layer needs to know about datasets (built from the config in one place)."""

    dataset: str
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    dialogue_max_train: Optional[int] = None  # cap on dialogue training pairs
    pretrain: tuple[PretrainSource, ...] = ()
    pretrain_max_train: Optional[int] = None  # cap on all pretraining training pairs together
    validation_fraction: float = 0.05
    seed: int = 0
    max_document_chars: Optional[int] = None  # trim long documents before splitting them
    dataset_field: str = "dataset_name"
    hf_cache_dir: Optional[str] = None
    columns: Columns = Columns()


@dataclass
class LoadedSplit:
    examples: list[Example]
    skipped: Counter = field(default_factory=Counter)  # reason -> count


# --- locating and opening --------------------------------------------------------------------


def _looks_like_path(location: str) -> bool:
    return (location.startswith((".", "/", "~")) or Path(location).suffix.lower() in LOCAL_EXTENSIONS
            or location.count("/") > 1 or os.sep != "/" and os.sep in location)


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
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def _local_files(path: Path, field_name: str) -> tuple[str, dict[str, list[str]]]:
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


def _is_utf8(path: str) -> bool:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_files(data_files: dict[str, list[str]], hf_cache_dir: Optional[str]) -> dict[str, list[str]]:
    """Text files with invalid UTF-8 are replaced by a repaired copy (bad bytes -> U+FFFD)."""
    import hashlib
    import tempfile

    out: dict[str, list[str]] = {}
    for split, files in data_files.items():
        out[split] = []
        for f in files:
            if _is_utf8(f):
                out[split].append(f)
                continue
            st = os.stat(f)
            key = hashlib.sha256(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
            folder = Path(hf_cache_dir or tempfile.gettempdir()) / "latentbridge-utf8"
            folder.mkdir(parents=True, exist_ok=True)
            fixed = folder / f"{key}{Path(f).suffix}"
            if not fixed.exists():
                tmp = fixed.with_name(f".{fixed.name}.{os.getpid()}")
                with open(f, "rb") as src, open(tmp, "w", encoding="utf-8") as dst:
                    for line in src:
                        dst.write(line.decode("utf-8", errors="replace"))
                os.replace(tmp, fixed)
            out[split].append(str(fixed))
    return out


def open_dataset(location: str, field_name: str, hf_cache_dir: Optional[str] = None, streaming: bool = False):
    """A `datasets.DatasetDict` for a hub name or local file/folder; UserError when it cannot be had.
    `streaming`: a local dataset is read as it is iterated (an IterableDatasetDict), nothing is cached."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(location).expanduser()
    if path.exists():
        builder, data_files = _local_files(path, field_name)
        kwargs: dict[str, Any] = {"streaming": True} if streaming else {}
        if builder in ("json", "text", "csv"):
            data_files = data_files if streaming else _utf8_files(data_files, hf_cache_dir)
            kwargs["encoding_errors"] = "replace"
        try:
            return datasets.load_dataset(builder, data_files=data_files, cache_dir=hf_cache_dir, **kwargs)
        except Exception as e:  # malformed file: say which and why, no traceback
            raise UserError(f"{field_name}: could not read {path} as {builder}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}") from e
    if _looks_like_path(location) or not HUB_NAME.match(location):
        raise UserError(f"{field_name}: local path {location!r} does not exist (resolved to {path.resolve()}).")
    online = _hub_reachable()
    try:
        with (contextlib.nullcontext() if online else _offline()):
            return datasets.load_dataset(location, cache_dir=hf_cache_dir)
    except Exception as e:
        why = "the hub is unreachable and it is not in the local cache" if not online else \
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"{field_name}: cannot load dataset {location!r} ({why}). To work offline, "
                        f"{LOCAL_HINT}.") from e


def _pick_split(dsd, wanted: str, field_name: str, location: str):
    if wanted in dsd:
        return dsd[wanted]
    for canonical, aliases in SPLIT_ALIASES.items():
        if wanted in aliases:
            for alias in aliases:
                if alias in dsd:
                    return dsd[alias]
    raise UserError(f"{field_name}: {location!r} has no split {wanted!r}; it has {sorted(dsd)}. "
                    f"Set the split flag (--train-split/--validation-split/--test-split) to one of those.")


def _find_column(columns: list[str], candidates: tuple[str, ...]) -> Optional[str]:
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    return None


def _string_columns(ds) -> list[str]:
    out = []
    for name, feature in ds.features.items():
        if getattr(feature, "dtype", None) in ("string", "large_string"):
            out.append(name)
    return out


def text_column(ds, field_name: str, location: str) -> str:
    """The text column of a pretraining dataset, found by schema; a clear error when none fits."""
    return _text_column(list(ds.column_names), _string_columns(ds), field_name, location)


def _text_column(columns: list[str], strings: list[str], field_name: str, location: str) -> str:
    col = _find_column(columns, TEXT_FIELDS)
    if col is None and len(strings) == 1:
        col = strings[0]
    if col is None:
        raise UserError(f"{field_name}: cannot find the text column of {location!r}. Columns: "
                        f"{columns}; expected one named {', '.join(TEXT_FIELDS)} "
                        f"(or exactly one text column).")
    return col


def _clean(value) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


# --- dialogue ----------------------------------------------------------------------------------

INPUT_FLAG, TARGET_FLAG, TEMPLATE_FLAG = "--dataset-input-field", "--dataset-target-field", "--dataset-input-template"


@dataclass(frozen=True)
class ColumnPlan:
    """How one split's rows become texts: the input column or template, and the target column."""

    input_column: Optional[str]
    target_column: str
    input_template: Optional[str] = None

    @property
    def needed(self) -> list[str]:
        inputs = template_fields(self.input_template) if self.input_template else [self.input_column]
        return list(dict.fromkeys([*inputs, self.target_column]))

    def input_text(self, row: dict) -> Optional[str]:
        if self.input_template:
            return _clean(render_template(self.input_template, row))
        return _clean(row.get(self.input_column))

    def target_text(self, row: dict) -> Optional[str]:
        return _clean(row.get(self.target_column))

    def describe(self) -> str:
        source = f"template {self.input_template!r}" if self.input_template else f"column {self.input_column!r}"
        return f"input from {source}, target from column {self.target_column!r}"


def plan_columns(columns: list[str], wanted: Columns, where: str) -> ColumnPlan:
    """The ColumnPlan for a split with these columns; UserError naming `where`, the columns and the flag to set."""
    has = f"its columns are {sorted(columns)}"
    if wanted.input_template:
        require_fields(wanted.input_template, columns, where, TEMPLATE_FLAG, has)
        source = None
    else:
        source = _column(columns, wanted.input_field, DIALOGUE_FIELDS, INPUT_FLAG, "input", where, has,
                         f" (or build the input from several with {TEMPLATE_FLAG})")
    target = _column(columns, wanted.target_field, SUMMARY_FIELDS, TARGET_FLAG, "target", where, has)
    if target == source:
        raise UserError(f"{where}: column {target!r} would be both the input and the target; set {INPUT_FLAG} "
                        f"and {TARGET_FLAG} to two different columns.")
    return ColumnPlan(source, target, wanted.input_template)


def _column(columns: list[str], name: Optional[str], candidates: tuple[str, ...], flag: str, side: str, where: str,
            has: str, hint: str = "") -> str:
    """The column named by a field, or the first of `candidates` there is; UserError saying which flag to set."""
    if name:
        if name not in columns:
            raise UserError(f"{where} has no column {name!r} ({flag}); {has}. Set {flag} to one of them.")
        return name
    found = _find_column(columns, candidates)
    if found is None:
        raise UserError(f"{where} has no {side} column named {'/'.join(candidates)}; {has}. Name the {side} "
                        f"column with {flag}{hint}.")
    return found


def split_location(spec: DataSpec, ds, split: str) -> str:
    """`dataset_name: <the split's files> (split 'x')` for a local dataset, the hub name for another."""
    path = Path(spec.dataset).expanduser()
    if path.exists():
        _, files = _local_files(path, spec.dataset_field)
        named = files.get(str(ds.split), files.get(split, [str(path)]))
        shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        return f"{spec.dataset_field}: {shown} (split {split!r})"
    return f"{spec.dataset_field}: {spec.dataset!r} split {split!r}"


def dialogue_columns(spec: DataSpec, split: str, dsd=None) -> tuple[Any, ColumnPlan]:
    """(the split as a `datasets.Dataset`, its ColumnPlan); UserError when a split or column is missing."""
    dsd = dsd if dsd is not None else open_dataset(spec.dataset, spec.dataset_field, spec.hf_cache_dir)
    ds = _pick_split(dsd, split, spec.dataset_field, spec.dataset)
    return ds, plan_columns(list(ds.column_names), spec.columns, split_location(spec, ds, split))


def load_dialogue_split(spec: DataSpec, split: str, max_samples: Optional[int] = None, dsd=None) -> LoadedSplit:
    """(input -> target) examples of one split, in dataset order, at most `max_samples`."""
    ds, plan = dialogue_columns(spec, split, dsd)
    names = plan.needed + (["id"] if "id" in ds.column_names and "id" not in plan.needed else [])
    table = ds.select_columns(names)[:]  # {column: [values]}
    out = LoadedSplit([])
    for i in range(len(ds)):
        if max_samples is not None and len(out.examples) >= max_samples:
            break
        row = {name: table[name][i] for name in names}
        d, s = plan.input_text(row), plan.target_text(row)
        if d is None or s is None:
            out.skipped["missing_or_empty_text"] += 1
            continue
        ex_id = str(row["id"]) if row.get("id") is not None else f"{split}-{i}"
        out.examples.append(Example(ex_id, "dialogue", d, s))
    return out


# --- pretraining -----------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def split_document(text: str, max_chars: Optional[int] = None) -> Optional[tuple[str, str]]:
    """(segment A, segment B): the document cut at the sentence boundary nearest its middle.

    Long documents are first trimmed to about `max_chars` at a sentence boundary. A single sentence is
    cut at the word boundary nearest the middle; fewer than 4 words give None (too short to pair).
    """
    text = " ".join(text.split())
    if max_chars is not None and len(text) > max_chars:
        cut = max((m.end() for m in _SENTENCE_END.finditer(text, 0, max_chars)), default=0)
        text = text[:cut].strip() if cut > max_chars // 2 else text[:max_chars].rsplit(" ", 1)[0]
    mid = len(text) / 2
    bounds = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text)]
    if not bounds:
        words = text.split(" ")
        if len(words) < 4:
            return None
        bounds = [len(" ".join(words[:k])) + 1 for k in range(1, len(words))]
    cut = min(bounds, key=lambda b: (abs(b - mid), b))
    a, b = text[:cut].strip(), text[cut:].strip()
    return (a, b) if a and b else None


def _validation_size(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def load_pretrain_source(spec: DataSpec, source: PretrainSource, max_train: Optional[int] = None,
                         dsd=None) -> dict[str, LoadedSplit]:
    """{"train", "validation"} (segment A -> segment B) examples of one pretraining source.

    Documents are visited in a seeded random order, so a cap takes a deterministic random sample; a
    source without a validation split gives `spec.validation_fraction` of the documents it uses to it.
    """
    if dsd is None:
        dsd = task_documents(spec) if source.task_texts else \
            open_dataset(source.location, source.field, spec.hf_cache_dir)
    train_ds = _pick_split(dsd, "train", source.field, source.location) if "train" in dsd else dsd[next(iter(dsd))]
    has_val = any(a in dsd for a in SPLIT_ALIASES["validation"])
    caps = [c for c in (source.max_samples, max_train) if c is not None]
    cap = min(caps) if caps else None
    rng = np.random.default_rng([spec.seed, sum(source.name.encode())])

    out = {"train": LoadedSplit([]), "validation": LoadedSplit([])}
    if has_val:
        val_ds = _pick_split(dsd, "validation", source.field, source.location)
        val_cap = None if cap is None else max(1, math.ceil(cap * spec.validation_fraction))
        _fill(out["validation"], val_ds, rng.permutation(len(val_ds)), val_cap, spec, source, "validation")
        _fill(out["train"], train_ds, rng.permutation(len(train_ds)), cap, spec, source, "train")
    else:
        order = rng.permutation(len(train_ds))
        n_val = _validation_size(len(order), spec.validation_fraction)
        if cap is not None:
            n_val = min(n_val, max(1, math.ceil(cap * spec.validation_fraction)) if n_val else 0)
        _fill(out["validation"], train_ds, order[:n_val], n_val, spec, source, "validation")
        _fill(out["train"], train_ds, order[n_val:], cap, spec, source, "train")
    return out


def task_documents(spec: DataSpec):
    """The dialogue dataset's own texts as a pretraining dataset: a DatasetDict {"train", "validation"} of
    {"text"} rows, each input followed by its target text (train capped like the dialogues)."""
    import datasets

    dsd = open_dataset(spec.dataset, spec.dataset_field, spec.hf_cache_dir)
    out = {}
    for name, split, cap in (("train", spec.train_split, spec.dialogue_max_train),
                             ("validation", spec.validation_split, None)):
        examples = load_dialogue_split(spec, split, cap, dsd).examples
        out[name] = datasets.Dataset.from_dict({"text": [t for e in examples for t in (e.input_text, e.target_text)]})
    return datasets.DatasetDict(out)


def corpus_texts(spec: DataSpec, limit: int) -> list[str]:
    """The texts a tokenizer and language model for this data are trained on: the dialogue dataset's training
    inputs and targets, then the training documents of the other pretraining sources; at most `limit`.
    Validation and test texts are left out, so nothing built from them has seen what is evaluated."""
    texts = list(task_documents(spec)["train"]["text"])
    for source in spec.pretrain:
        if source.task_texts or len(texts) >= limit:
            continue
        dsd = open_dataset(source.location, source.field, spec.hf_cache_dir)
        ds = _pick_split(dsd, "train", source.field, source.location) if "train" in dsd else dsd[next(iter(dsd))]
        col = text_column(ds, source.field, source.location)
        texts += [t for t in (_clean(v) for v in ds.select(range(min(len(ds), limit - len(texts))))[col]) if t]
    return texts[:limit]


def _fill(out: LoadedSplit, ds, order: np.ndarray, cap: Optional[int], spec: DataSpec,
          source: PretrainSource, split: str) -> None:
    col = text_column(ds, source.field, source.location)
    column = ds.select_columns([col])
    chunk = 4096
    for start in range(0, len(order), chunk):
        idx = order[start:start + chunk]
        texts = column[np.sort(idx).tolist()][col]
        by_pos = dict(zip(np.sort(idx).tolist(), texts))
        for i in idx.tolist():
            if cap is not None and len(out.examples) >= cap:
                return
            text = _clean(by_pos[i])
            if text is None:
                out.skipped["missing_or_empty_text"] += 1
                continue
            pair = split_document(text, spec.max_document_chars)
            if pair is None:
                out.skipped["too_short_to_split"] += 1
                continue
            out.examples.append(Example(f"{source.name}-{split}-{i}", source.name, *pair))


def load_collection(spec: DataSpec, collection: str) -> dict[str, LoadedSplit]:
    """All splits of a collection: "dialogue" -> train/validation/test, "pretrain" -> train/validation."""
    if collection == "dialogue":
        dsd = open_dataset(spec.dataset, spec.dataset_field, spec.hf_cache_dir)
        return {"train": load_dialogue_split(spec, spec.train_split, spec.dialogue_max_train, dsd),
                "validation": load_dialogue_split(spec, spec.validation_split, None, dsd),
                "test": load_dialogue_split(spec, spec.test_split, None, dsd)}
    if collection == "pretrain":
        merged = {"train": LoadedSplit([]), "validation": LoadedSplit([])}
        per_source = [load_pretrain_source(spec, s, spec.pretrain_max_train) for s in spec.pretrain]
        for source, loaded in zip(spec.pretrain, per_source):
            for split, part in loaded.items():
                merged[split].examples += part.examples
                for reason, n in part.skipped.items():
                    merged[split].skipped[f"{source.name}:{reason}"] += n
        if spec.pretrain_max_train is not None:
            merged["train"].examples = _interleave_cap([p["train"].examples for p in per_source],
                                                       spec.pretrain_max_train)
        return merged
    raise ValueError(f"unknown collection {collection!r}")


def _interleave_cap(parts: list[list[Example]], cap: int) -> list[Example]:
    """At most `cap` examples taken round-robin from the sources, so a total cap keeps the mix."""
    out: list[Example] = []
    for i in range(max((len(p) for p in parts), default=0)):
        for p in parts:
            if i < len(p):
                out.append(p[i])
                if len(out) >= cap:
                    return out
    return out


# --- checking without loading (--mode doctor) --------------------------------------------------


@dataclass(frozen=True)
class SplitCheck:
    """What checking one split found: where it is, how its rows become texts, and a sample's health."""

    name: str  # "train", or a pretraining source's name
    location: str
    columns: str = ""  # ColumnPlan.describe(), or the text column
    sampled: int = 0
    without_text: int = 0  # sampled rows that give no input or no target text
    problem: Optional[str] = None


def _sample(ds, n: int) -> tuple[list[dict], list[str]]:
    from itertools import islice

    rows = list(islice(iter(ds), n))
    return rows, list(ds.column_names or (rows[0].keys() if rows else []))


def _usable(name: str, location: str, columns: str, rows: list[dict], ok: list[bool]) -> SplitCheck:
    bad = ok.count(False)
    problem = None
    if not rows:
        problem = f"{location} holds no rows"
    elif bad == len(rows):
        problem = f"{location}: none of the first {len(rows)} rows has text in {columns}"
    return SplitCheck(name, location, columns, len(rows), bad, problem)


def check_dialogue_data(spec: DataSpec, splits: Sequence[str], sample: int = 200) -> list[SplitCheck]:
    """The checks loading makes (split names, columns) and a look at the first `sample` rows of each split,
    reading the files as a stream (nothing cached or written). UserError when the dataset cannot be opened."""
    dsd = open_dataset(spec.dataset, spec.dataset_field, spec.hf_cache_dir, streaming=True)
    out = []
    for split in splits:
        try:
            ds = _pick_split(dsd, split, spec.dataset_field, spec.dataset)
            rows, columns = _sample(ds, sample)
            location = split_location(spec, ds, split)
            plan = plan_columns(columns, spec.columns, location)
        except UserError as error:
            out.append(SplitCheck(split, spec.dataset, problem=str(error)))
            continue
        ok = [plan.input_text(r) is not None and plan.target_text(r) is not None for r in rows]
        out.append(_usable(split, location, plan.describe(), rows, ok))
    return out


def check_pretrain_source(spec: DataSpec, source: PretrainSource, sample: int = 200) -> SplitCheck:
    """The text column of a pretraining source and a look at its first `sample` rows (streamed)."""
    if source.task_texts:
        return SplitCheck(source.name, source.location, "the dataset's own input and target texts")
    try:
        dsd = open_dataset(source.location, source.field, spec.hf_cache_dir, streaming=True)
        ds = dsd["train"] if "train" in dsd else dsd[next(iter(dsd))]
        rows, columns = _sample(ds, sample)
        strings = [c for c in columns if rows and isinstance(rows[0].get(c), str)]
        col = _text_column(columns, strings, source.field, source.location)
    except UserError as error:
        return SplitCheck(source.name, source.location, problem=str(error))
    return _usable(source.name, source.location, f"column {col!r}", rows, [_clean(r.get(col)) is not None for r in rows])
