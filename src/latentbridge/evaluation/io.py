"""Texts in and summaries out for `--mode infer`.

Inputs, the first that is given: `--text`; `--input-file`; standard input (when it is not a terminal).
A file or standard input holds one text per line, or JSON Lines whose records carry a `dialogue` or
`text` field (and optionally an `id`, copied to the output). JSON Lines is recognised by a `.jsonl`
name or by a first non-blank line that starts with `{`. Blank lines of a plain file are skipped.

Outputs: standard output gets one summary per line (newlines inside a summary become spaces);
`--output-file` gets JSON Lines `{"id", "input", "summary"}`, written atomically.

`--input-file -` streams instead: each line of standard input (a JSON object as above, or plain text) is
one request, answered on standard output by one JSON line `{"id", "summary"}` (or `{"id", "error"}`),
flushed at once, in order.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Optional, Sequence

from latentbridge.errors import UserError
from latentbridge.files import write_text_atomic

TEXT_FIELDS = ("dialogue", "text")
STREAM = Path("-")  # --input-file -: answer standard input line by line


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


def parse_lines(lines: Sequence[str], name: str) -> list[InputText]:
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
        out.append(_json_record(line, where, str(len(out))))
    if not out:
        raise UserError(f"{name} holds no texts: give one text per line, or JSON Lines with a \"dialogue\" "
                        "or \"text\" field.")
    return out


def _json_record(line: str, where: str, default_id: str) -> InputText:
    """The text of one JSON Lines record: its "dialogue" or "text" field, and its "id" (else `default_id`)."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise UserError(f"{where} is not valid JSON ({error}); a .jsonl input needs one JSON object per "
                        "line with a \"dialogue\" or \"text\" field.") from None
    if not isinstance(record, dict):
        raise UserError(f"{where} is a JSON {type(record).__name__}, not an object with a \"dialogue\" or "
                        "\"text\" field.")
    key = next((k for k in TEXT_FIELDS if k in record), None)
    if key is None or not isinstance(record[key], str):
        raise UserError(f"{where} has no text field: expected a string under \"dialogue\" or \"text\"; "
                        f"it has the keys {sorted(record)}.")
    ident = str(record["id"]) if record.get("id") is not None else default_id
    return _check_text(InputText(ident, record[key], where))


def parse_request(line: str, number: int, default_id: str) -> InputText:
    """One request of a stream (`--input-file -`): a JSON object with a "dialogue" or "text" field (and an
    optional "id"), or a line of plain text."""
    where = f"standard input line {number}"
    if line.lstrip().startswith("{"):
        return _json_record(line, where, default_id)
    return _check_text(InputText(default_id, line.rstrip("\r\n"), where))


def write_json_line(stream: IO[str], record: dict) -> None:
    """One JSON line, flushed at once: a reader waiting on a pipe gets each answer as soon as it is written."""
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    stream.flush()


def read_inputs(text: Optional[str], input_file: Optional[Path], stdin: Optional[IO[str]] = None) -> list[InputText]:
    """The texts to transform, from --text, --input-file or standard input (in that order)."""
    if text is not None:
        return [_check_text(InputText("0", text, "--text"))]
    if input_file is not None:
        try:
            lines = Path(input_file).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            raise UserError(f"--input-file {input_file} cannot be read: {error.strerror or error}.") from None
        return parse_lines(lines, str(input_file))
    stdin = sys.stdin if stdin is None else stdin
    if stdin is None or stdin.isatty():
        raise UserError("Nothing to transform: give --text \"...\", --input-file FILE (one text per line, or "
                        "JSON Lines with a \"dialogue\" or \"text\" field), or pipe texts into standard input.")
    return parse_lines(stdin.read().splitlines(), "standard input")


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
