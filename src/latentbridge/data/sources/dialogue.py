"""The dialogue dataset: (dialogue -> summary) examples of a split, its columns named by `Columns` (fields, or a
template for the input), else found by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from latentbridge.data.data_specs import Columns, DataSpec
from latentbridge.data.rows import RowSource, Skips, split_rows
from latentbridge.data.sources.streams import Example, SplitStream, clean_text, find_column
from latentbridge.errors import UserError
from latentbridge.text_template import render_template, require_fields

DIALOGUE_FIELDS = ("dialogue", "dialog", "conversation", "document", "article", "text", "source")
SUMMARY_FIELDS = ("summary", "highlights", "target", "abstract")


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
            return clean_text(render_template(self.input_template, row))
        return clean_text(row.get(self.input_column))

    def target_text(self, row: dict[str, Any]) -> Optional[str]:
        return clean_text(row.get(self.target_column))

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
    found = find_column(columns, candidates)
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
