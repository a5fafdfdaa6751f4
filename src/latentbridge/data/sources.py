"""Load the dialogue dataset and the pretraining text, from a hub name or a local file/folder.

Everything here returns plain Python `Example`s (id, source, input text, target text) plus counts
of skipped rows. The orchestration layer builds a `DataSpec` from the config; nothing in this file
reads the config module.

    dialogue:  (dialogue -> summary)                  split names from the spec (train/validation/test)
    pretrain:  document -> (segment A -> segment B)   split at a sentence boundary near the middle;
               sources without a validation split give `validation_fraction` of their documents to it.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import math
import os
import re
import socket
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import huggingface_hub.constants as hub_constants
import numpy as np

from latentbridge.errors import UserError

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

    name: str  # short name stored in the cache: "wikitext", "arxiv", "english"
    location: str  # hub name or local path
    field: str  # config field, for error messages
    max_samples: Optional[int] = None  # cap on training pairs taken from this source


@dataclass(frozen=True)
class DataSpec:
    """Everything the data layer needs to know about datasets (built from the config in one place)."""

    dataset: str
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    dialogue_max_train: Optional[int] = None  # cap on dialogue training pairs
    max_validation: Optional[int] = None  # cap on the validation examples of each collection
    max_test: Optional[int] = None  # cap on the dialogue test split
    pretrain: tuple[PretrainSource, ...] = ()
    pretrain_max_train: Optional[int] = None  # cap on all pretraining training pairs together
    validation_fraction: float = 0.05
    seed: int = 0
    max_document_chars: Optional[int] = None  # trim long documents before splitting them
    dataset_field: str = "dataset_name"
    hf_cache_dir: Optional[str] = None


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
    import datasets.config  # datasets takes seconds to import; the recipe imports this module

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


def open_dataset(location: str, field_name: str, hf_cache_dir: Optional[str] = None):
    """A `datasets.DatasetDict` for a hub name or local file/folder; UserError when it cannot be had."""
    import datasets  # takes seconds to import; the recipe imports this module

    datasets.disable_progress_bars()
    path = Path(location).expanduser()
    if path.exists():
        builder, data_files = _local_files(path, field_name)
        kwargs = {}
        if builder in ("json", "text", "csv"):
            data_files = _utf8_files(data_files, hf_cache_dir)
            kwargs = {"encoding_errors": "replace"}
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
    strings = _string_columns(ds)
    col = _find_column(list(ds.column_names), TEXT_FIELDS)
    if col is None and len(strings) == 1:
        col = strings[0]
    if col is None:
        raise UserError(f"{field_name}: cannot find the text column of {location!r}. Columns: "
                        f"{ds.column_names}; expected one named {', '.join(TEXT_FIELDS)} "
                        f"(or exactly one text column).")
    return col


def _clean(value) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


# --- dialogue --------------------------------------------------------------------------------


def load_dialogue_split(spec: DataSpec, split: str, max_samples: Optional[int] = None, dsd=None) -> LoadedSplit:
    """(dialogue -> summary) examples of one split, in dataset order, at most `max_samples`."""
    dsd = dsd if dsd is not None else open_dataset(spec.dataset, spec.dataset_field, spec.hf_cache_dir)
    ds = _pick_split(dsd, split, spec.dataset_field, spec.dataset)
    src = _find_column(ds.column_names, DIALOGUE_FIELDS)
    tgt = _find_column(ds.column_names, SUMMARY_FIELDS)
    if src is None or tgt is None or src == tgt:
        raise UserError(f"{spec.dataset_field}: {spec.dataset!r} split {split!r} needs a dialogue column "
                        f"({'/'.join(DIALOGUE_FIELDS)}) and a summary column ({'/'.join(SUMMARY_FIELDS)}); "
                        f"it has {ds.column_names}.")
    ids = ds["id"] if "id" in ds.column_names else None
    out = LoadedSplit([])
    for i, (d, s) in enumerate(zip(ds[src], ds[tgt])):
        if max_samples is not None and len(out.examples) >= max_samples:
            break
        d, s = _clean(d), _clean(s)
        if d is None or s is None:
            out.skipped["missing_or_empty_text"] += 1
            continue
        ex_id = str(ids[i]) if ids is not None and ids[i] is not None else f"{split}-{i}"
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
    dsd = dsd if dsd is not None else open_dataset(source.location, source.field, spec.hf_cache_dir)
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
                "validation": load_dialogue_split(spec, spec.validation_split, spec.max_validation, dsd),
                "test": load_dialogue_split(spec, spec.test_split, spec.max_test, dsd)}
    if collection == "pretrain":
        merged = {"train": LoadedSplit([]), "validation": LoadedSplit([])}
        per_source = [load_pretrain_source(spec, s, spec.pretrain_max_train) for s in spec.pretrain]
        for source, loaded in zip(spec.pretrain, per_source):
            for split, part in loaded.items():
                merged[split].examples += part.examples
                for reason, n in part.skipped.items():
                    merged[split].skipped[f"{source.name}:{reason}"] += n
        for split, cap in (("train", spec.pretrain_max_train), ("validation", spec.max_validation)):
            if cap is not None:
                merged[split].examples = _interleave_cap([p[split].examples for p in per_source], cap)
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
