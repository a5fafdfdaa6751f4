"""The dialogue dataset: columns found or named (fields, a template), rows without text skipped."""

from __future__ import annotations

import pytest

from latentbridge.data.sources import Columns, DataSpec, load_collection, load_dialogue_split
from latentbridge.errors import UserError

from tests.data.builders import DOCS, docs_folder, write_jsonl


def test_bad_dialogue_rows_are_skipped_and_counted(tmp_path):
    rows = [{"id": "1", "dialogue": "A: hi\nB: hello", "summary": "A greets B."},
            {"id": "2", "dialogue": None, "summary": "x"},
            {"id": "3", "dialogue": "A: hi", "summary": "   "},
            {"id": "4", "dialogue": "", "summary": "y"},
            {"id": "5", "dialogue": "A: bye\nB: bye", "summary": "They say bye."}]
    folder = tmp_path / "dlg"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(folder / f"{split}.jsonl", rows)
    loaded = load_collection(DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf")), "dialogue")
    for split in ("train", "validation", "test"):
        assert [e.id for e in loaded[split].examples] == ["1", "5"]
        assert loaded[split].skipped.counts == {"missing_or_empty_text": 3}
        assert loaded[split].skipped.where == {str(folder / f"{split}.jsonl"): {
            "missing_or_empty_text": {"count": 3, "unit": "line", "first": [2, 3, 4]}}}


def test_dialogue_without_summary_column_names_the_file_its_columns_and_the_flag(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"dialogue": "A: hi", "label": 1}])
    with pytest.raises(UserError) as error:
        load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    message = str(error.value)
    assert str(path) in message and "['dialogue', 'label']" in message and "--dataset-target-field" in message


def test_columns_named_by_fields_are_read(tmp_path):
    spec = DataSpec(str(docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    examples = load_dialogue_split(spec, "train").examples
    assert [(e.input_text, e.target_text) for e in examples[:2]] == [
        ("Body number 0 says what f0 does.", "Do the useful thing number 0."),
        ("Body number 1 says what f1 does.", "Do the useful thing number 1.")]


def test_an_input_template_joins_columns(tmp_path):
    spec = DataSpec(str(docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_template="{qualname}\n{body}", target_field="summary_line"))
    assert load_dialogue_split(spec, "test").examples[3].input_text == "pkg.f3\nBody number 3 says what f3 does."


def test_rows_missing_a_template_column_value_are_skipped(tmp_path):
    rows = [DOCS[0], {**DOCS[1], "qualname": None}, DOCS[2]]
    spec = DataSpec(str(docs_folder(tmp_path, rows)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_template="{qualname}: {body}", target_field="summary_line"))
    loaded = load_dialogue_split(spec, "train")
    assert len(loaded.examples) == 2 and loaded.skipped.counts == {"missing_or_empty_text": 1}


@pytest.mark.parametrize("columns, flag, missing", [
    (Columns(input_field="text", target_field="summary_line"), "--dataset-input-field", "'text'"),
    (Columns(input_field="body", target_field="summary"), "--dataset-target-field", "'summary'"),
    (Columns(input_template="{title}\n{body}", target_field="summary_line"), "--dataset-input-template", "'title'"),
    (Columns(), "--dataset-input-field", "no input column"),
])
def test_a_missing_column_names_the_file_the_columns_and_the_flag(tmp_path, columns, flag, missing):
    folder = docs_folder(tmp_path)
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"), columns=columns)
    with pytest.raises(UserError) as error:
        load_dialogue_split(spec, "validation")
    message = str(error.value)
    assert str(folder / "validation.jsonl") in message and missing in message and flag in message
    assert "['body', 'qualname', 'summary_line']" in message
