"""Pretraining documents: document -> (segment A -> segment B), split at a sentence boundary near the middle.
Sources without a validation split give `validation_fraction` of their documents to it. A `task_texts` source
takes its documents from the dialogue dataset itself: every input and target text of its train (validation)
split."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np

from latentbridge.data.data_specs import DataSpec, PretrainSource
from latentbridge.data.rows import SPLIT_ALIASES, RowSource, Skips, split_names, split_rows
from latentbridge.data.sources.dialogue import load_dialogue_split
from latentbridge.data.sources.streams import Example, SplitStream, clean_text, find_column, string_columns
from latentbridge.errors import UserError
from latentbridge.text_template import render_template, template_fields

TEXT_FIELDS = ("text", "content", "abstract", "article", "document", "body", "passage", "raw", "sentence")


# --- pretraining documents ------------------------------------------------------------------------

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


class TaskTexts(RowSource):
    """The dialogue dataset's texts as documents: each example's input, then its target, each named by the
    example's own file and line, and the column it comes from ("train.jsonl (input)"), so that skipped inputs
    and targets are counted apart and can be found."""

    def __init__(self, dialogue: SplitStream):
        self.dialogue = dialogue
        self._units: dict[str, str] = {}

    def unit_of(self, file: str) -> str:
        return self._units.get(file, self.unit)

    def _records(self) -> Iterator[tuple[str, int, Any]]:
        for example in self.dialogue:
            for role, text in (("input", example.input_text), ("target", example.target_text)):
                name = f"{example.file} ({role})"
                self._units[name] = example.unit
                yield name, example.line, {"text": text}


def _validation_size(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def source_rows(spec: DataSpec, source: PretrainSource, split: str) -> RowSource:
    if source.task_texts:
        wanted = spec.train_split if split == "train" else spec.validation_split
        return TaskTexts(load_dialogue_split(spec, wanted))
    return split_rows(source.location, source.field, split, spec.hf_cache_dir, source.subset)


def _has_validation_split(spec: DataSpec, source: PretrainSource) -> bool:
    if source.split is not None:
        return False
    if source.task_texts:
        return True
    names = split_names(source.location, source.field, spec.hf_cache_dir, source.subset)
    return any(n in names for n in SPLIT_ALIASES["validation"])


def train_split_name(spec: DataSpec, source: PretrainSource) -> str:
    if source.split is not None or source.task_texts:
        return source.split or "train"
    names = split_names(source.location, source.field, spec.hf_cache_dir, source.subset)
    return "train" if "train" in names else names[0]


def text_reader(rows: RowSource, source: PretrainSource) -> Callable[[dict[str, Any]], Optional[str]]:
    """row values -> the document text, by the source's text_field, text_template or a column found by name."""
    if source.text_template:
        missing = [c for c in template_fields(source.text_template) if c not in rows.columns()]
        if missing:
            raise UserError(f"pretrain_mix: source {source.name!r} ({source.location}) has no column "
                            f"{', '.join(map(repr, missing))} for its text_template; its columns are "
                            f"{rows.columns()}.")
        return lambda values: clean_text(render_template(source.text_template, values))
    column = source.text_field or text_column(rows, source)
    if column not in rows.columns():
        raise UserError(f"pretrain_mix: source {source.name!r} ({source.location}) has no column {column!r} "
                        f"(its text_field); its columns are {rows.columns()}.")
    return lambda values: clean_text(values.get(column))


def text_column(rows: RowSource, source: PretrainSource) -> str:
    """The text column of a pretraining split, found by name; a clear error when none fits."""
    columns = rows.columns()
    col = find_column(columns, TEXT_FIELDS)
    strings = string_columns(rows) if col is None else []
    if col is None and len(strings) == 1:
        col = strings[0]
    if col is None:
        raise UserError(f"{source.field}: cannot find the text column of {source.location!r}. Columns: "
                        f"{columns}; expected one named {', '.join(TEXT_FIELDS)} (or exactly one text column)"
                        f"{'; set text_field in the mix' if source.field == 'pretrain_mix' else ''}.")
    return col


@dataclass(frozen=True)
class _Part:
    """One split of one pretraining source: its rows, which positions it uses (sorted; None: all), and how a
    row gives its text."""

    rows: RowSource
    positions: Optional[np.ndarray]
    text_of: Callable[[dict[str, Any]], Optional[str]]

    @property
    def size(self) -> int:
        return self.rows.count() if self.positions is None else len(self.positions)


def _document_pairs(spec: DataSpec, source: PretrainSource, part: _Part, split: str,
                    skips: Skips) -> Iterator[Example]:
    """(segment A -> segment B) examples from the documents of `part`."""
    rows, positions = part.rows, part.positions
    k = 0
    for row in rows.rows(skips):
        if positions is not None:
            while k < len(positions) and positions[k] < row.position:
                k += 1
            if k == len(positions):
                return
            if positions[k] != row.position:
                continue
        text = part.text_of(row.values)
        if text is None:
            skips.add("missing_or_empty_text", row.file, row.line, rows.unit_of(row.file))
            continue
        pair = split_document(text, spec.max_document_chars)
        if pair is None:
            skips.add("too_short_to_split", row.file, row.line, rows.unit_of(row.file))
            continue
        yield Example(f"{source.name}-{split}-{row.position}", source.name, *pair, row.file, row.line,
                      rows.unit_of(row.file))


def _sample(rng: np.random.Generator, n: int, cap: Optional[int]) -> Optional[np.ndarray]:
    """Sorted positions of a seeded random sample of `cap` of `n` documents (None: all of them)."""
    order = rng.permutation(n)
    return None if cap is None or cap >= n else np.sort(order[:cap])


def pretrain_parts(spec: DataSpec, source: PretrainSource, max_train: Optional[int] = None) -> dict[str, _Part]:
    """{"train", "validation"}: which documents of `source` each split uses.

    Documents are drawn in a seeded random order, so a cap takes a random sample (read back in file order); a
    source without a validation split gives `spec.validation_fraction` of the documents it uses to validation.
    A cap counts documents drawn: rows among them that cannot be used are skipped and reported.
    """
    caps = [c for c in (source.max_samples, max_train) if c is not None]
    cap = min(caps) if caps else None
    rng = np.random.default_rng([spec.seed, sum(source.name.encode())])
    train = source_rows(spec, source, train_split_name(spec, source))
    if _has_validation_split(spec, source):
        validation = source_rows(spec, source, "validation")
        val_cap = None if cap is None else max(1, math.ceil(cap * spec.validation_fraction))
        val_positions = _sample(rng, validation.count(), val_cap)
        return {"train": _Part(train, _sample(rng, train.count(), cap), text_reader(train, source)),
                "validation": _Part(validation, val_positions, text_reader(validation, source))}
    n = train.count()
    order = rng.permutation(n)
    n_val = _validation_size(n, spec.validation_fraction)
    if cap is not None:
        n_val = min(n_val, max(1, math.ceil(cap * spec.validation_fraction)) if n_val else 0)
    rest = order[n_val:] if cap is None else order[n_val:n_val + cap]
    text_of = text_reader(train, source)
    return {"train": _Part(train, np.sort(rest), text_of), "validation": _Part(train, np.sort(order[:n_val]), text_of)}


def load_pretrain_source(spec: DataSpec, source: PretrainSource,
                         max_train: Optional[int] = None) -> dict[str, SplitStream]:
    """{"train", "validation"} (segment A -> segment B) examples of one pretraining source."""
    out = {}
    for split, part in pretrain_parts(spec, source, max_train).items():
        def read(skips: Skips, part: _Part = part, split: str = split) -> Iterator[Example]:
            yield from _document_pairs(spec, source, part, split, skips)

        out[split] = SplitStream(read, (source.name,), lambda part=part: part.size)
    return out
