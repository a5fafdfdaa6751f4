"""The examples a cache is built from: (input text -> target text) pairs, read as streams.

Everything here yields plain `Example`s (id, source, input text, target text) through `SplitStream`s,
which read their rows lazily (data/rows.py) and count what they leave out, so a split of any size
passes through in constant memory. The orchestration layer builds a `DataSpec`; nothing here reads the
config module.

    dialogue:  (dialogue -> summary)                  split names from the spec (train/validation/test);
               columns named by `Columns` (fields, or a template for the input), else found by name
    pretrain:  document -> (segment A -> segment B)   split at a sentence boundary near the middle;
               sources without a validation split give `validation_fraction` of their documents to it.
               A `task_texts` source takes its documents from the dialogue dataset itself: every input
               and target text of its train (validation) split.

Pretraining sources are combined by `datasets.interleave_datasets`: with weights, each example comes
from a source drawn with probability proportional to its weight (seeded) until one source runs out;
without weights (the three seed-004 sources), round-robin until all are used.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np

from latentbridge.data.rows import SPLIT_ALIASES, RowSource, Skips, split_names, split_rows
from latentbridge.errors import UserError
from latentbridge.text_template import render_template, require_fields, template_fields

TEXT_FIELDS = ("text", "content", "abstract", "article", "document", "body", "passage", "raw", "sentence")
DIALOGUE_FIELDS = ("dialogue", "dialog", "conversation", "document", "article", "text", "source")
SUMMARY_FIELDS = ("summary", "highlights", "target", "abstract")


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


@dataclass(frozen=True)
class PretrainSource:
    """One pretraining source: where it is, the config field naming it, its document cap and weight."""

    name: str  # short name stored in the cache: "wikitext", "arxiv", "english", a mix source's name
    location: str  # hub name or local path (the dialogue dataset's for task_texts)
    field: str  # config field, for error messages
    max_samples: Optional[int] = None  # cap on training pairs taken from this source
    weight: Optional[float] = None  # sampling weight in a mix; None: the unweighted seed-004 sources
    subset: Optional[str] = None  # hub configuration name
    split: Optional[str] = None  # the split to read (none: train, with validation from its validation split)
    text_field: Optional[str] = None  # the text column (none: found by name)
    text_template: Optional[str] = None  # a format string over the row's columns, instead of text_field
    task_texts: bool = False  # the dialogue dataset's own input and target texts


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
    max_validation: Optional[int] = None  # cap on the validation examples of each collection
    max_test: Optional[int] = None  # cap on the dialogue test split
    pretrain: tuple[PretrainSource, ...] = ()
    pretrain_max_train: Optional[int] = None  # cap on all pretraining training pairs together
    validation_fraction: float = 0.05
    seed: int = 0
    max_document_chars: Optional[int] = None  # trim long documents before splitting them
    dataset_field: str = "dataset_name"
    hf_cache_dir: Optional[str] = None
    columns: Columns = Columns()

    @property
    def weighted(self) -> bool:
        """Whether the pretraining sources are a weighted mix (pretrain_mix)."""
        return any(s.weight is not None for s in self.pretrain)


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


def _clean(value: Any) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _find_column(columns: list[str], candidates: tuple[str, ...]) -> Optional[str]:
    lower = {c.lower(): c for c in columns}
    return next((lower[name] for name in candidates if name in lower), None)


def _string_columns(rows: RowSource) -> list[str]:
    first = next(rows.rows(Skips()), None)
    return [k for k, v in first.values.items() if isinstance(v, str)] if first else []


# --- dialogue --------------------------------------------------------------------------------


INPUT_FLAG, TARGET_FLAG, TEMPLATE_FLAG = "--dataset-input-field", "--dataset-target-field", "--dataset-input-template"


@dataclass(frozen=True)
class ColumnPlan:
    """How one split's rows become texts: the input column or template, and the target column."""

    input_column: Optional[str]
    target_column: str
    input_template: Optional[str] = None

    def input_text(self, row: dict[str, Any]) -> Optional[str]:
        if self.input_template:
            return _clean(render_template(self.input_template, row))
        return _clean(row.get(self.input_column))

    def target_text(self, row: dict[str, Any]) -> Optional[str]:
        return _clean(row.get(self.target_column))

    def describe(self) -> str:
        source = f"template {self.input_template!r}" if self.input_template else f"column {self.input_column!r}"
        return f"input from {source}, target from column {self.target_column!r}"


def plan_columns(columns: list[str], wanted: Columns, where: str) -> ColumnPlan:
    """The ColumnPlan for a split with these columns; UserError naming `where`, every missing column (input and
    target together) and the flags to set; a split without one row that parses is "empty"."""
    if not columns:
        raise UserError(f"{where} is empty: it holds no row that parses. It needs rows with an input and a target "
                        f"column (JSON Lines objects, CSV with a header row, Parquet); see docs/data.md.")
    has = f"its columns are {sorted(columns)}"
    problems: list[str] = []
    source = target = None
    try:
        if wanted.input_template:
            require_fields(wanted.input_template, columns, where, TEMPLATE_FLAG, has)
        else:
            source = _column(columns, wanted.input_field, DIALOGUE_FIELDS, INPUT_FLAG, "input", where, has,
                             f" (or build the input from several with {TEMPLATE_FLAG})")
    except UserError as error:
        problems.append(str(error))
    try:
        target = _column(columns, wanted.target_field, SUMMARY_FIELDS, TARGET_FLAG, "target", where, has)
    except UserError as error:
        problems.append(str(error))
    if problems:
        raise UserError(" Also: ".join(problems))
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


def split_location(spec: DataSpec, rows: RowSource, split: str) -> str:
    """`dataset_name: <the split's files> (split 'x')` for a local dataset, the hub name for another."""
    files = rows.files
    if files:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"{spec.dataset_field}: {shown} (split {split!r})"
    return f"{spec.dataset_field}: {spec.dataset!r} split {split!r}"


def dialogue_columns(spec: DataSpec, split: str) -> tuple[RowSource, ColumnPlan]:
    """The split's rows and their ColumnPlan; UserError when the split or a column is missing."""
    rows = split_rows(spec.dataset, spec.dataset_field, split, spec.hf_cache_dir)
    return rows, plan_columns(rows.columns(), spec.columns, split_location(spec, rows, split))


def load_dialogue_split(spec: DataSpec, split: str, max_samples: Optional[int] = None) -> SplitStream:
    """(input -> target) examples of one split, in dataset order, at most `max_samples`. The split and its
    columns are checked now (UserError); rows are read when the stream is iterated."""
    rows, plan = dialogue_columns(spec, split)

    def read(skips: Skips) -> Iterator[Example]:
        taken = 0
        for row in rows.rows(skips):
            if max_samples is not None and taken >= max_samples:
                return
            d, s = plan.input_text(row.values), plan.target_text(row.values)
            if d is None or s is None:
                skips.add("missing_or_empty_text", row.file, row.line, rows.unit_of(row.file))
                continue
            ident = row.values.get("id")
            taken += 1
            yield Example(str(ident) if ident is not None else f"{split}-{row.position}", "dialogue", d, s,
                          row.file, row.line, rows.unit_of(row.file))

    def expected() -> int:
        n = rows.count()
        return n if max_samples is None else min(n, max_samples)

    return SplitStream(read, ("dialogue",), expected)


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


def _source_rows(spec: DataSpec, source: PretrainSource, split: str) -> RowSource:
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


def _train_split_name(spec: DataSpec, source: PretrainSource) -> str:
    if source.split is not None or source.task_texts:
        return source.split or "train"
    names = split_names(source.location, source.field, spec.hf_cache_dir, source.subset)
    return "train" if "train" in names else names[0]


def _text_of(rows: RowSource, source: PretrainSource) -> Callable[[dict[str, Any]], Optional[str]]:
    """row values -> the document text, by the source's text_field, text_template or a column found by name."""
    if source.text_template:
        missing = [c for c in template_fields(source.text_template) if c not in rows.columns()]
        if missing:
            raise UserError(f"pretrain_mix: source {source.name!r} ({source.location}) has no column "
                            f"{', '.join(map(repr, missing))} for its text_template; its columns are "
                            f"{rows.columns()}.")
        return lambda values: _clean(render_template(source.text_template, values))
    column = source.text_field or text_column(rows, source)
    if column not in rows.columns():
        raise UserError(f"pretrain_mix: source {source.name!r} ({source.location}) has no column {column!r} "
                        f"(its text_field); its columns are {rows.columns()}.")
    return lambda values: _clean(values.get(column))


def text_column(rows: RowSource, source: PretrainSource) -> str:
    """The text column of a pretraining split, found by name; a clear error when none fits."""
    columns = rows.columns()
    col = _find_column(columns, TEXT_FIELDS)
    strings = _string_columns(rows) if col is None else []
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
    train = _source_rows(spec, source, _train_split_name(spec, source))
    if _has_validation_split(spec, source):
        validation = _source_rows(spec, source, "validation")
        val_cap = None if cap is None else max(1, math.ceil(cap * spec.validation_fraction))
        val_positions = _sample(rng, validation.count(), val_cap)
        return {"train": _Part(train, _sample(rng, train.count(), cap), _text_of(train, source)),
                "validation": _Part(validation, val_positions, _text_of(validation, source))}
    n = train.count()
    order = rng.permutation(n)
    n_val = _validation_size(n, spec.validation_fraction)
    if cap is not None:
        n_val = min(n_val, max(1, math.ceil(cap * spec.validation_fraction)) if n_val else 0)
    rest = order[n_val:] if cap is None else order[n_val:n_val + cap]
    text_of = _text_of(train, source)
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


# --- mixing sources --------------------------------------------------------------------------------


def mix_order(sizes: list[int], weights: Optional[list[float]], seed: int) -> Iterator[int]:
    """Source indices in sampling order, by `datasets.interleave_datasets` over one small column per source.

    With weights: each draw picks a source with probability proportional to its weight (seeded), until one
    source has given all of its `sizes`; without: round-robin until every source has. Interleaving the
    indices, not the examples, keeps the documents streaming (interleaving iterable datasets of examples
    read ~7k examples/s here, this ~100k/s).
    """
    import datasets  # takes seconds to import; the recipe imports this module

    datasets.disable_progress_bars()
    columns = [datasets.Dataset.from_dict({"s": np.full(n, i, dtype=np.int32)}) for i, n in enumerate(sizes)]
    if weights is None:
        mixed = datasets.interleave_datasets(columns, stopping_strategy="all_exhausted_without_replacement")
    else:
        total = sum(weights)
        mixed = datasets.interleave_datasets(columns, probabilities=[w / total for w in weights], seed=seed,
                                             stopping_strategy="first_exhausted")
    for batch in mixed.with_format("numpy").iter(batch_size=65536):
        yield from batch["s"].tolist()


def _mixed(streams: list[SplitStream], weights: Optional[list[float]], seed: int, cap: Optional[int],
           skips: Skips) -> Iterator[Example]:
    """Examples of the sources' streams in `mix_order`, at most `cap`. A weighted mix stops when a source has no
    more usable examples (so the realised shares follow the weights); round-robin goes on with the others."""
    iterators = [iter(s) for s in streams]
    done = [False] * len(streams)
    taken = 0
    try:
        for k in mix_order([s.expected or 0 for s in streams], weights, seed):
            if cap is not None and taken >= cap:
                return
            if done[k]:
                continue
            example = next(iterators[k], None)
            if example is None:
                if weights is not None:
                    return
                done[k] = True
                continue
            taken += 1
            yield example
    finally:
        for stream in streams:
            skips.update(stream.skipped, f"{stream.source_names[0]}:")


def pretrain_split(spec: DataSpec, parts: list[dict[str, SplitStream]], split: str) -> SplitStream:
    """One split of the pretraining collection: its sources' streams mixed (weighted, or round-robin)."""
    streams = [p[split] for p in parts]
    names = tuple(s.name for s in spec.pretrain)
    weights = [float(s.weight) for s in spec.pretrain] if spec.weighted else None
    cap = spec.pretrain_max_train if split == "train" else spec.max_validation

    def read(skips: Skips) -> Iterator[Example]:
        yield from _mixed(streams, weights, spec.seed, cap, skips)

    def expected() -> int:
        total = sum(s.expected or 0 for s in streams)
        return total if cap is None else min(total, cap)

    return SplitStream(read, names, expected, dict(zip(names, weights)) if weights else None)


def load_collection(spec: DataSpec, collection: str) -> dict[str, SplitStream]:
    """All splits of a collection: "dialogue" -> train/validation/test, "pretrain" -> train/validation.
    Splits, columns and sources are checked now (UserError); the examples are read as the streams are."""
    if collection == "dialogue":
        return {"train": load_dialogue_split(spec, spec.train_split, spec.dialogue_max_train),
                "validation": load_dialogue_split(spec, spec.validation_split, spec.max_validation),
                "test": load_dialogue_split(spec, spec.test_split, spec.max_test)}
    if collection == "pretrain":
        parts = [load_pretrain_source(spec, s, spec.pretrain_max_train) for s in spec.pretrain]
        return {split: pretrain_split(spec, parts, split) for split in ("train", "validation")}
    raise ValueError(f"unknown collection {collection!r}")


# --- texts for tiny models, and checks without loading (--mode doctor) ------------------------------


def training_texts(spec: DataSpec, limit: int) -> list[str]:
    """The texts a tokenizer and language model for this data are trained on: the dialogue dataset's training
    inputs and targets, then the training documents of the other pretraining sources; at most `limit`.
    Validation and test dialogues are left out, so nothing built from them has seen what is evaluated."""
    texts: list[str] = []
    for example in load_dialogue_split(spec, spec.train_split, spec.dialogue_max_train):
        texts += [example.input_text, example.target_text]
        if len(texts) >= limit:
            return texts[:limit]
    for source in spec.pretrain:
        if source.task_texts:
            continue
        rows = _source_rows(spec, source, _train_split_name(spec, source))
        text_of = _text_of(rows, source)
        for row in rows.rows(Skips()):
            text = text_of(row.values)
            if text is not None:
                texts.append(text)
            if len(texts) >= limit:
                return texts
    return texts


@dataclass(frozen=True)
class SplitCheck:
    """What checking one split found: where it is, how its rows become texts, and a sample's health."""

    name: str  # "train", or a pretraining source's name
    location: str
    columns: str = ""  # ColumnPlan.describe(), or the text column
    sampled: int = 0
    without_text: int = 0  # sampled rows that give no text (unparsable, or no input or no target text)
    problem: Optional[str] = None


def _sampled(rows: RowSource, n: int, has_text: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
    """(rows looked at, how many of them give no text) over the first `n` rows, unparsable ones included."""
    skips = Skips()
    usable = [has_text(row.values) for row in itertools.islice(rows.rows(skips), n)]
    unparsable = sum(skips.counts.values())
    return len(usable) + unparsable, usable.count(False) + unparsable


def _check(name: str, location: str, columns: str, rows: RowSource, sample: int,
           has_text: Callable[[dict[str, Any]], bool]) -> SplitCheck:
    sampled, bad = _sampled(rows, sample, has_text)
    problem = None
    if not sampled:
        problem = f"{location} holds no rows"
    elif bad == sampled:
        problem = f"{location}: none of the first {sampled} rows has text in {columns}"
    return SplitCheck(name, location, columns, sampled, bad, problem)


def check_dialogue_data(spec: DataSpec, splits: tuple[str, ...], sample: int = 200) -> list[SplitCheck]:
    """The checks loading makes (split names, columns) and a look at the first `sample` rows of each split."""
    out = []
    for split in splits:
        try:
            rows, plan = dialogue_columns(spec, split)
        except UserError as error:
            out.append(SplitCheck(split, spec.dataset, problem=str(error)))
            continue
        out.append(_check(split, split_location(spec, rows, split), plan.describe(), rows, sample,
                          lambda v: plan.input_text(v) is not None and plan.target_text(v) is not None))
    return out


def check_pretrain_source(spec: DataSpec, source: PretrainSource, sample: int = 200) -> SplitCheck:
    """The text column of a pretraining source and a look at its first `sample` rows."""
    if source.task_texts:
        return SplitCheck(source.name, source.location, "the dataset's own input and target texts")
    try:
        rows = _source_rows(spec, source, _train_split_name(spec, source))
        text_of = _text_of(rows, source)
    except UserError as error:
        return SplitCheck(source.name, source.location, problem=str(error))
    if source.text_template:
        where = f"template {source.text_template!r}"
    else:
        where = f"column {source.text_field or text_column(rows, source)!r}"
    return _check(source.name, source.location, where, rows, sample, lambda v: text_of(v) is not None)
