"""Local files: bad JSON lines, CSV rows, invalid UTF-8 skipped with their line numbers; every format loads."""

from __future__ import annotations

import json

import pytest

from latentbridge.data.sources import DataSpec, PretrainSource, load_dialogue_split, load_pretrain_source


def test_bad_json_lines_invalid_utf8_and_nulls_are_skipped_with_their_line_numbers(tmp_path):
    path = tmp_path / "wiki.jsonl"
    good = [json.dumps({"text": f"Sentence one number {i}. Sentence two is here. And a third one."}) for i in range(8)]
    lines = [good[0].encode(), b'{"text": "Bad \xff\xfe bytes. In the middle of it. Still fine."}',
             b'{"text": null}', b'{"text": ""}', b'{"other": 1, "text": "   "}', b'{"text": "cut off',
             b"", b"[1, 2]"] + [g.encode() for g in good[1:]]
    path.write_bytes(b"\n".join(lines) + b"\n")
    spec = DataSpec("unused", validation_fraction=0.0, hf_cache_dir=str(tmp_path / "hf"))
    out = load_pretrain_source(spec, PretrainSource("wikitext", str(path), "wikitext_dataset"))
    assert len(out["train"].examples) == 8
    skipped = out["train"].skipped
    assert skipped.counts == {"missing_or_empty_text": 3, "invalid_utf8": 1, "malformed_json": 2}
    assert skipped.where[str(path)] == {  # 1-based lines of the user's file; line 7 is blank, not a row
        "invalid_utf8": {"count": 1, "unit": "line", "first": [2]},
        "missing_or_empty_text": {"count": 3, "unit": "line", "first": [3, 4, 5]},
        "malformed_json": {"count": 2, "unit": "line", "first": [6, 8]}}
    assert skipped.describe() == [f"{path}: 1 invalid UTF-8 (line 2), 3 missing or empty text (lines 3, 4, 5), "
                                  "2 malformed JSON (lines 6, 8)"]


def test_malformed_csv_rows_are_skipped_with_their_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b'id,dialogue,summary\n1,"A: hi\nB: hello",A greets B.\n2,only two\n'
                     b'3,"A: \xff bad bytes",x\n4,A: bye,They part.,extra\n5,A: see you,They part again.\n')
    out = load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    assert [e.id for e in out.examples] == ["1", "5"]
    assert out.skipped.where[str(path)] == {"malformed_csv": {"count": 2, "unit": "line", "first": [4, 6]},
                                            "invalid_utf8": {"count": 1, "unit": "line", "first": [5]}}


def test_rows_of_a_json_array_are_numbered_by_item(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(b'[{"dialogue": "A: hi", "summary": "A greets."}, 7, {"dialogue": "", "summary": "x"},'
                     b' {"dialogue": "A: \xff", "summary": "y"}, {"dialogue": "A: bye", "summary": "A leaves."}]')
    out = load_dialogue_split(DataSpec(str(path)), "train")
    assert [e.target_text for e in out.examples] == ["A greets.", "A leaves."]
    assert out.skipped.describe() == [f"{path}: 1 malformed JSON (item 2), 1 missing or empty text (item 3), "
                                      "1 invalid UTF-8 (item 4)"]


def test_only_the_first_line_numbers_are_kept_but_every_row_is_counted(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join("not json\n" if i % 2 else json.dumps({"dialogue": f"A: {i}", "summary": "s"}) + "\n"
                            for i in range(40)))
    out = load_dialogue_split(DataSpec(str(path)), "train")
    assert len(out.examples) == 20
    assert out.skipped.where[str(path)]["malformed_json"] == {"count": 20, "unit": "line", "first": [2, 4, 6, 8, 10]}
    assert out.skipped.describe() == [f"{path}: 20 malformed JSON (lines 2, 4, 6, 8, 10, ...)"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "txt", "json"])
def test_local_formats_load(tmp_path, fmt):
    import pandas as pd

    texts = [f"Doc {i} starts here. It goes on for a while. Then it ends." for i in range(20)]
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        pd.DataFrame({"content": texts}).to_csv(path, index=False)
    elif fmt == "parquet":
        pd.DataFrame({"abstract": texts}).to_parquet(path)
    elif fmt == "txt":
        path.write_text("\n".join(texts) + "\n")
    else:
        path.write_text(json.dumps([{"article": t} for t in texts]))
    spec = DataSpec("unused", validation_fraction=0.1, hf_cache_dir=str(tmp_path / "hf"))
    out = load_pretrain_source(spec, PretrainSource("x", str(path), "arxiv_dataset"))
    assert len(out["train"].examples) == 18 and len(out["validation"].examples) == 2
