"""Texts in and summaries out for `--mode infer`.

Inputs, the first that is given: `--text`; `--input-file`; standard input (when it is not a terminal).
A file or standard input holds one text per line, or JSON Lines records (with an optional `id`, copied to
the output) whose text is read like the training data's input: from the key named by
`dataset_input_field`, or `dataset_input_template` over the record's keys, or else the first of the
input names training recognises (`dialogue`, ..., `text`). JSON Lines is recognised by a `.jsonl`
name or by a first non-blank line that starts with `{`. Blank lines of a plain file are skipped.

Outputs: standard output gets one summary per line (newlines inside a summary become spaces);
`--output-file` gets JSON Lines `{"id", "input", "summary"}`, written atomically.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Optional, Sequence

from latentbridge.atomic import write_text_atomic
from latentbridge.data.sources import DIALOGUE_FIELDS, INPUT_FLAG, TEMPLATE_FLAG
from latentbridge.errors import UserError
from latentbridge.text_template import render_template, require_fields


@dataclass(frozen=True)
class InputColumns:
    """Where a JSON Lines record's text is: a key, a template over its keys, or (neither) found by name."""

    field: Optional[str] = None
    template: Optional[str] = None

    def describe(self) -> str:
        if self.template:
            return f"the keys of {TEMPLATE_FLAG} {self.template!r}"
        if self.field:
            return f"a string under {self.field!r} ({INPUT_FLAG})"
        return f"a string under one of {', '.join(map(repr, DIALOGUE_FIELDS))}"


@dataclass(frozen=True)
class InputText:
    id: str
    text: str
    where: str  # "--text", "input.jsonl line 3": named in errors


def _check_text(item: InputText) -> InputText:
    if not item.text.strip():
        raise UserError(f"The text from {item.where} is empty: give a dialogue or other text to transform.")
    return item


def _is_jsonl(name: str, lines: Sequence[str]) -> bool:
    if name.endswith(".jsonl"):
        return True
    first = next((line for line in lines if line.strip()), "")
    return first.lstrip().startswith("{")


def record_text(record: dict, columns: InputColumns, where: str) -> str:
    """The text of one JSON Lines record, read as `columns` say; UserError naming the line and its keys."""
    keys = f"it has the keys {sorted(record)}"
    if columns.template:
        require_fields(columns.template, record, where, TEMPLATE_FLAG, keys)
        text = render_template(columns.template, record)
    else:
        key = columns.field or next((k for k in DIALOGUE_FIELDS if k in record), None)
        text = record.get(key) if key is not None else None
    if not isinstance(text, str):
        raise UserError(f"{where} has no text field: expected {columns.describe()}; {keys}. Name the key with "
                        f"{INPUT_FLAG} (or {TEMPLATE_FLAG}).")
    return text


def parse_lines(lines: Sequence[str], name: str, columns: InputColumns = InputColumns()) -> list[InputText]:
    """Texts of a file's (or standard input's) lines: JSON Lines or one text per line."""
    out: list[InputText] = []
    jsonl = _is_jsonl(name, lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        if not jsonl:
            out.append(InputText(str(len(out)), line.rstrip("\r\n"), where))
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise UserError(f"{where} is not valid JSON ({error}); a .jsonl input needs one JSON object per "
                            f"line with {columns.describe()}.") from None
        if not isinstance(record, dict):
            raise UserError(f"{where} is a JSON {type(record).__name__}, not an object with {columns.describe()}.")
        ident = str(record["id"]) if record.get("id") is not None else str(len(out))
        out.append(_check_text(InputText(ident, record_text(record, columns, where), where)))
    if not out:
        raise UserError(f"{name} holds no texts: give one text per line, or JSON Lines with {columns.describe()}.")
    return out


def read_inputs(text: Optional[str], input_file: Optional[Path], stdin: Optional[IO[str]] = None,
                columns: InputColumns = InputColumns()) -> list[InputText]:
    """The texts to transform, from --text, --input-file or standard input (in that order); `columns` says
    where a JSON Lines record's text is."""
    if text is not None:
        return [_check_text(InputText("0", text, "--text"))]
    if input_file is not None:
        try:
            lines = Path(input_file).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            raise UserError(f"--input-file {input_file} cannot be read: {error.strerror or error}.") from None
        return parse_lines(lines, str(input_file), columns)
    stdin = sys.stdin if stdin is None else stdin
    if stdin is None or stdin.isatty():
        raise UserError("Nothing to transform: give --text \"...\", --input-file FILE (one text per line, or "
                        f"JSON Lines with {columns.describe()}), or pipe texts into standard input.")
    return parse_lines(stdin.read().splitlines(), "standard input", columns)


def write_outputs(items: Sequence[InputText], summaries: Sequence[str], output_file: Optional[Path],
                  stdout: Optional[IO[str]] = None) -> None:
    """Summaries to `output_file` as JSON Lines, or to standard output one per line."""
    if output_file is None:
        stream = sys.stdout if stdout is None else stdout
        for summary in summaries:
            stream.write(" ".join(summary.split("\n")) + "\n")
        stream.flush()
        return
    write_jsonl(output_file, ({"id": i.id, "input": i.text, "summary": s} for i, s in zip(items, summaries)))


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    _write_atomic(Path(path), text, "--output-file")


def write_json(path: Path, obj: dict, what: str = "--output-file") -> None:
    _write_atomic(Path(path), json.dumps(obj, indent=2, ensure_ascii=False) + "\n", what)


def _write_atomic(path: Path, text: str, what: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise UserError(f"Cannot write {path} ({what}): {error.strerror or error}.") from None
