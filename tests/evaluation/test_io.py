"""Infer's inputs and outputs: --text, files (plain or JSON Lines), standard input, jsonl out."""

import io
import json

import pytest

from latentbridge.errors import UserError
from latentbridge.evaluation.io import read_inputs, write_outputs


class _Pipe(io.StringIO):
    def isatty(self):
        return False


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_text_wins_over_file_and_stdin(tmp_path):
    items = read_inputs("Anna: hi", tmp_path / "missing.txt", _Pipe("x"))
    assert [i.text for i in items] == ["Anna: hi"]


def test_plain_file_one_text_per_line_skipping_blanks(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("Anna: hi Ben: hey\n\nTom: late? Mia: yes\n")
    assert [i.text for i in read_inputs(None, f)] == ["Anna: hi Ben: hey", "Tom: late? Mia: yes"]


def test_jsonl_reads_dialogue_or_text_and_keeps_ids(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"id": "a1", "dialogue": "Anna: hi"}) + "\n" + json.dumps({"text": "Ben: yo"}) + "\n")
    items = read_inputs(None, f)
    assert [(i.id, i.text) for i in items] == [("a1", "Anna: hi"), ("1", "Ben: yo")]


def test_stdin_is_read_like_a_file():
    items = read_inputs(None, None, _Pipe('{"dialogue": "Anna: hi"}\n{"dialogue": "Ben: yo"}\n'))
    assert [i.text for i in items] == ["Anna: hi", "Ben: yo"]


@pytest.mark.parametrize("content, message", [
    ('{"dialogue": ""}\n', "empty"),
    ('{"summary": "x"}\n', "no text field"),
    ("{not json\n", "not valid JSON"),
    ("\n\n", "holds no texts"),
])
def test_bad_files_are_user_errors(tmp_path, content, message):
    f = tmp_path / "in.jsonl"
    f.write_text(content)
    with pytest.raises(UserError, match=message):
        read_inputs(None, f)


def test_empty_text_missing_file_and_no_input_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="empty"):
        read_inputs("   ", None)
    with pytest.raises(UserError, match="cannot be read"):
        read_inputs(None, tmp_path / "missing.txt")
    with pytest.raises(UserError, match="Nothing to transform"):
        read_inputs(None, None, _Terminal())


def test_outputs_to_stdout_lines_or_jsonl(tmp_path):
    items = read_inputs(None, None, _Pipe("a\nb\n"))
    out = io.StringIO()
    write_outputs(items, ["one\ntwo", "three"], None, out)
    assert out.getvalue() == "one two\nthree\n"
    write_outputs(items, ["one", "three"], tmp_path / "o" / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "o" / "out.jsonl").read_text().splitlines()]
    assert rows == [{"id": "0", "input": "a", "summary": "one"}, {"id": "1", "input": "b", "summary": "three"}]


def test_a_stream_request_is_a_json_object_or_plain_text():
    from latentbridge.evaluation.io import parse_request

    requests = [('{"id": "x", "dialogue": "Anna: hi"}\n', "0"), ('{"text": "Ben: yo"}\n', "1"), ("Tom: late?\r\n", "2")]
    items = [parse_request(line, number, default_id) for number, (line, default_id) in enumerate(requests, 1)]
    assert [(i.id, i.text) for i in items] == [("x", "Anna: hi"), ("1", "Ben: yo"), ("2", "Tom: late?")]
    with pytest.raises(UserError, match="standard input line 4 is not valid JSON"):
        parse_request("{oops\n", 4, "3")
