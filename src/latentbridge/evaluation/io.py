"""Texts in and summaries out for `--mode infer`.

Inputs, the first that is given: `--text`; `--input-file`; standard input (when it is not a terminal).
A file or standard input holds one text per line, or JSON Lines records (with an optional `id`, copied to
the output) whose text is read like the training data's input (`InputColumns`, from the model's config):
the key named by `dataset_input_field`, or `dataset_input_template` over the record's keys, or else the
first of the input names training recognises (`dialogue`, ..., `text`). JSON Lines is recognised by a
`.jsonl` name or by a first non-blank line that starts with `{`. Blank lines of a plain file are skipped.
`--mode infer` reads the records before the model loads (a malformed line fails fast) and takes their
texts once the model's config says where they are (`with_texts`).

Outputs: standard output gets one summary per line (newlines inside a summary become spaces);
`--output-file` gets JSON Lines `{"id", "input", "summary"}`, written atomically.

`--input-file -` streams instead: each line of standard input (a JSON object as above, or plain text) is
one request, answered on standard output by one JSON line `{"id", "summary"}` (or `{"id", "error"}`),
flushed at once, in order. The id is the request's own, exactly as given (44 stays a number, "third" a
string), on errors too; a request without one gets its 0-based index as a string.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Optional, Sequence

from latentbridge.data.sources import DIALOGUE_FIELDS, INPUT_FLAG, TEMPLATE_FLAG
from latentbridge.errors import UserError
from latentbridge.files import write_text_atomic
from latentbridge.text_template import render_template, require_fields

STREAM = Path("-")  # --input-file -: answer standard input line by line


@dataclass(frozen=True)
class InputText:
    id: Any  # a record's "id" exactly as given (string, number, ...), else the text's 0-based index as a string
    text: str
    where: str  # "--text", "input.jsonl line 3": named in errors
    record: Optional[dict] = None  # a JSON Lines record, whose text `with_texts` takes out


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

    def text_of(self, record: dict, where: str) -> str:
        """The record's text; UserError naming `where` and the record's keys."""
        keys = f"it has the keys {sorted(record)}"
        if self.template:
            require_fields(self.template, record, where, TEMPLATE_FLAG, keys)
            text = render_template(self.template, record)
        else:
            key = self.field or next((k for k in DIALOGUE_FIELDS if k in record), None)
            text = record.get(key) if key is not None else None
        if not isinstance(text, str):
            raise UserError(f"{where} has no text field: expected {self.describe()}; {keys}. Name the key with "
                            f"{INPUT_FLAG} (or {TEMPLATE_FLAG}).")
        return text


def with_texts(items: Sequence[InputText], columns: InputColumns) -> list[InputText]:
    """The items with the texts of their JSON Lines records taken out as `columns` say."""
    return [item if item.record is None else
            _check_text(InputText(item.id, columns.text_of(item.record, item.where), item.where)) for item in items]


def _check_text(item: InputText) -> InputText:
    if not item.text.strip():
        raise UserError(f"The text from {item.where} is empty: give a dialogue or other text to transform.")
    return item


def _is_jsonl(name: str, lines: Sequence[str]) -> bool:
    if name.endswith(".jsonl"):
        return True
    first = next((line for line in lines if line.strip()), "")
    return first.lstrip().startswith("{")


def parse_lines(lines: Sequence[str], name: str, columns: Optional[InputColumns] = InputColumns()) -> list[InputText]:
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
        out.append(_json_record(line, where, str(len(out)), columns))
    if not out:
        raise UserError(f"{name} holds no texts: give one text per line, or JSON Lines records with a text "
                        f"field (\"dialogue\", \"text\", or the one {INPUT_FLAG} names).")
    return out


def _json_record(line: str, where: str, default_id: str, columns: Optional[InputColumns]) -> InputText:
    """One JSON Lines record with its "id" (else `default_id`): its text taken as `columns` say, or (None) the
    record kept whole for `with_texts`."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise UserError(f"{where} is not valid JSON ({error}); a .jsonl input needs one JSON object per "
                        "line with a text field.") from None
    if not isinstance(record, dict):
        raise UserError(f"{where} is a JSON {type(record).__name__}, not an object with a text field.")
    ident = record["id"] if record.get("id") is not None else default_id
    item = InputText(ident, "", where, record)
    return item if columns is None else with_texts([item], columns)[0]


def parse_request(line: str, number: int, default_id: str,
                  columns: Optional[InputColumns] = InputColumns()) -> InputText:
    """One request of a stream (`--input-file -`): a JSON object with a text field (and an optional "id"),
    or a line of plain text."""
    where = f"standard input line {number}"
    if line.lstrip().startswith("{"):
        return _json_record(line, where, default_id, columns)
    return _check_text(InputText(default_id, line.rstrip("\r\n"), where))


def request_id(line: str, default_id: str) -> Any:
    """The "id" of a stream request exactly as given (type kept), even when the request is refused for another
    reason; `default_id` for plain text, a record without one, or a line that is not a JSON object."""
    if not line.lstrip().startswith("{"):
        return default_id
    try:
        record = json.loads(line)
    except ValueError:
        return default_id
    return record["id"] if isinstance(record, dict) and record.get("id") is not None else default_id


def write_json_line(stream: IO[str], record: dict) -> None:
    """One JSON line, flushed at once: a reader waiting on a pipe gets each answer as soon as it is written."""
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    stream.flush()


def read_inputs(text: Optional[str], input_file: Optional[Path], stdin: Optional[IO[str]] = None,
                columns: Optional[InputColumns] = InputColumns()) -> list[InputText]:
    """The texts to transform, from --text, --input-file or standard input (in that order); JSON Lines texts
    taken as `columns` say, or (None) left in their records for `with_texts`."""
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
                        "JSON Lines records with a text field), or pipe texts into standard input.")
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
