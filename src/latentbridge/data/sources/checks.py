"""Checks of the data without loading it (--mode doctor): split names, columns, and a look at the first rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Optional

from latentbridge.data.data_specs import DataSpec, PretrainSource
from latentbridge.data.rows import RowSource, Skips
from latentbridge.data.sources.dialogue import dialogue_columns, split_location
from latentbridge.data.sources.pretrain import source_rows, text_column, text_reader, train_split_name
from latentbridge.errors import UserError

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
        rows = source_rows(spec, source, train_split_name(spec, source))
        text_of = text_reader(rows, source)
    except UserError as error:
        return SplitCheck(source.name, source.location, problem=str(error))
    if source.text_template:
        where = f"template {source.text_template!r}"
    else:
        where = f"column {source.text_field or text_column(rows, source)!r}"
    return _check(source.name, source.location, where, rows, sample, lambda v: text_of(v) is not None)
