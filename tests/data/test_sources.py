"""Loading datasets from local files and folders, bad rows, schema detection, document pairs, caps, mixes."""

import json
from collections import Counter

import pytest

from latentbridge.data.rows import open_hub_dataset, split_rows
from latentbridge.data.sources import (Columns, DataSpec, PretrainSource, check_dialogue_data,
                                       load_collection, load_dialogue_split, load_pretrain_source, split_document,
                                       training_texts)
from latentbridge.errors import UserError

from tests.factories import corpus_data_spec


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_dialogue_rows_are_skipped_and_counted(tmp_path):
    rows = [{"id": "1", "dialogue": "A: hi\nB: hello", "summary": "A greets B."},
            {"id": "2", "dialogue": None, "summary": "x"},
            {"id": "3", "dialogue": "A: hi", "summary": "   "},
            {"id": "4", "dialogue": "", "summary": "y"},
            {"id": "5", "dialogue": "A: bye\nB: bye", "summary": "They say bye."}]
    folder = tmp_path / "dlg"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        _jsonl(folder / f"{split}.jsonl", rows)
    loaded = load_collection(DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf")), "dialogue")
    for split in ("train", "validation", "test"):
        assert [e.id for e in loaded[split].examples] == ["1", "5"]
        assert loaded[split].skipped.counts == {"missing_or_empty_text": 3}
        assert loaded[split].skipped.where == {str(folder / f"{split}.jsonl"): {
            "missing_or_empty_text": {"count": 3, "unit": "line", "first": [2, 3, 4]}}}


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


def test_parquet_and_hub_rows_are_numbered_by_row(tmp_path):
    import datasets
    import pandas as pd

    from latentbridge.data.rows import HubRows, Skips

    rows = {"dialogue": ["A: hi", None, "A: bye", "  "], "summary": ["A greets.", "x", "A leaves.", "y"]}
    path = tmp_path / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    out = load_dialogue_split(DataSpec(str(path)), "train")
    assert len(out.examples) == 2 and out.skipped.describe() == [
        f"{path}: 2 missing or empty text (rows 2, 4)"]
    hub = HubRows(datasets.Dataset.from_dict(rows), "org/data (train)")
    assert hub.count() == 4 and hub.columns() == ["dialogue", "summary"]
    assert [r.line for r in hub.rows(Skips())] == [1, 2, 3, 4]


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


def test_unknown_text_column_is_a_clear_error(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", [{"title": "a", "label": "b", "n": 1}] * 3)
    spec = DataSpec("unused", hf_cache_dir=str(tmp_path / "hf"))
    with pytest.raises(UserError, match=r"arxiv_dataset.*text column.*title"):
        load_pretrain_source(spec, PretrainSource("arxiv", str(path), "arxiv_dataset"))


def test_dialogue_without_summary_column_names_the_file_its_columns_and_the_flag(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", [{"dialogue": "A: hi", "label": 1}])
    with pytest.raises(UserError) as error:
        load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    message = str(error.value)
    assert str(path) in message and "['dialogue', 'label']" in message and "--dataset-target-field" in message


DOCS = [{"qualname": f"pkg.f{i}", "body": f"Body number {i} says what f{i} does.", "summary_line": f"Do the useful thing number {i}."}
        for i in range(6)]


def _docs_folder(tmp_path, rows=DOCS):
    folder = tmp_path / "docs"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        _jsonl(folder / f"{split}.jsonl", rows)
    return folder


def test_columns_named_by_fields_are_read(tmp_path):
    spec = DataSpec(str(_docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    examples = load_dialogue_split(spec, "train").examples
    assert [(e.input_text, e.target_text) for e in examples[:2]] == [
        ("Body number 0 says what f0 does.", "Do the useful thing number 0."),
        ("Body number 1 says what f1 does.", "Do the useful thing number 1.")]


def test_an_input_template_joins_columns(tmp_path):
    spec = DataSpec(str(_docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_template="{qualname}\n{body}", target_field="summary_line"))
    assert load_dialogue_split(spec, "test").examples[3].input_text == "pkg.f3\nBody number 3 says what f3 does."


def test_rows_missing_a_template_column_value_are_skipped(tmp_path):
    rows = [DOCS[0], {**DOCS[1], "qualname": None}, DOCS[2]]
    spec = DataSpec(str(_docs_folder(tmp_path, rows)), hf_cache_dir=str(tmp_path / "hf"),
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
    folder = _docs_folder(tmp_path)
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"), columns=columns)
    with pytest.raises(UserError) as error:
        load_dialogue_split(spec, "validation")
    message = str(error.value)
    assert str(folder / "validation.jsonl") in message and missing in message and flag in message
    assert "['body', 'qualname', 'summary_line']" in message


def test_the_dataset_source_pretrains_on_the_dialogues_own_texts(tmp_path):
    spec = DataSpec(str(_docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    source = PretrainSource("dataset", spec.dataset, "dataset_name", task_texts=True)
    out = load_pretrain_source(spec, source)
    joined = {f"{e.input_text} {e.target_text}" for e in out["train"].examples}
    assert joined == {r["body"] for r in DOCS} | {r["summary_line"] for r in DOCS}
    assert len(out["validation"].examples) == 12  # the dataset's validation split: 6 inputs + 6 targets


def test_training_texts_are_the_training_inputs_and_targets_only(tmp_path):
    folder = _docs_folder(tmp_path)
    (folder / "test.jsonl").write_text(json.dumps({**DOCS[0], "body": "A test body never seen."}) + "\n")
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    texts = training_texts(spec, limit=100)
    assert texts[:2] == [DOCS[0]["body"], DOCS[0]["summary_line"]] and len(texts) == 12
    assert training_texts(spec, limit=5) == texts[:5]


def test_checks_sample_rows_and_report_columns_without_loading(tmp_path):
    folder = _docs_folder(tmp_path, DOCS + [{"qualname": "x", "body": "", "summary_line": "y"}])
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    checks = check_dialogue_data(spec, ["train", "validation", "test"], sample=100)
    assert [(c.name, c.sampled, c.without_text, c.problem) for c in checks] == [
        ("train", 7, 1, None), ("validation", 7, 1, None), ("test", 7, 1, None)]
    assert "'body'" in checks[0].columns and not list(tmp_path.rglob("*.arrow"))  # streamed: nothing cached
    bad = check_dialogue_data(spec.__class__(**{**spec.__dict__, "test_split": "nope"}), ["nope"])
    assert "no split 'nope'" in bad[0].problem


def test_missing_local_file_names_the_field(tmp_path):
    with pytest.raises(UserError, match=r"wikitext_dataset.*does not exist"):
        split_rows(str(tmp_path / "nope.jsonl"), "wikitext_dataset", "train")
    with pytest.raises(UserError, match=r"dataset_name.*does not exist"):
        split_rows("./data/samsum_missing", "dataset_name", "train")


def test_unreachable_hub_name_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(UserError, match=r"dataset_name.*knkarthick/samsum.*--preset tiny"):
        open_hub_dataset("knkarthick/samsum", "dataset_name", hf_cache_dir=str(tmp_path / "hf"))


def test_missing_split_lists_available_ones(tmp_path, corpus_dir):
    spec = corpus_data_spec(corpus_dir, validation_split="dev2")
    with pytest.raises(UserError, match=r"no split 'dev2'.*test.*train.*validation"):
        load_collection(spec, "dialogue")


def test_split_document_cuts_at_a_sentence_boundary_near_the_middle():
    a, b = split_document("One two three. Four five six. Seven eight nine. Ten eleven twelve.")
    assert (a, b) == ("One two three. Four five six.", "Seven eight nine. Ten eleven twelve.")
    a, b = split_document("a single sentence without any end mark at all")
    assert a and b and f"{a} {b}" == "a single sentence without any end mark at all"
    assert split_document("too short") is None
    long = " ".join(f"Sentence number {i} is here." for i in range(1000))
    a, b = split_document(long, max_chars=200)
    assert len(a) + len(b) <= 200 and a.endswith(".") and b.endswith(".")


def test_validation_split_is_deterministic_and_disjoint(corpus_dir):
    spec = corpus_data_spec(corpus_dir, validation_fraction=0.1)
    source = spec.pretrain[0]
    one, two = load_pretrain_source(spec, source), load_pretrain_source(spec, source)
    ids = lambda part: [e.id for e in part.examples]
    assert ids(one["train"]) == ids(two["train"]) and ids(one["validation"]) == ids(two["validation"])
    assert len(one["validation"].examples) == 120
    assert not set(ids(one["train"])) & set(ids(one["validation"]))
    other = load_pretrain_source(corpus_data_spec(corpus_dir, validation_fraction=0.1, seed=1), source)
    assert ids(other["validation"]) != ids(one["validation"])


def test_caps_limit_each_source_and_the_total(corpus_dir):
    capped = corpus_data_spec(corpus_dir, pretrain=tuple(
        PretrainSource(s.name, s.location, s.field, 50 if s.name == "wikitext" else None)
        for s in corpus_data_spec(corpus_dir).pretrain), pretrain_max_train=200, dialogue_max_train=30)
    pre = load_collection(capped, "pretrain")
    sources = [e.source for e in pre["train"].examples]
    assert len(sources) == 200 and sources.count("wikitext") == 50
    assert sources.count("arxiv") == 75 and sources.count("english") == 75
    assert 0 < sources.count("wikitext") and len(pre["validation"].examples) <= 3 * 10
    dlg = load_collection(capped, "dialogue")
    assert len(dlg["train"].examples) == 30 and len(dlg["test"].examples) == 200


def test_folder_of_shards_is_one_train_split(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(3):
        _jsonl(folder / f"part{k}.jsonl", [{"text": f"Shard {k} doc {i}. It has two sentences."} for i in range(10)])
    (folder / ".cache").mkdir()
    _jsonl(folder / ".cache" / "junk.jsonl", [{"text": "ignored. really ignored."}])
    assert split_rows(str(folder), "english_pretrain_dataset", "train").count() == 30


# --- pretraining mixes -------------------------------------------------------------------------


def _documents(path, n, tag, column="text"):
    return _jsonl(path, [{column: f"{tag} document {i} begins here. It ends a sentence later.", "n": i}
                         for i in range(n)])


def test_weighted_mix_is_realised_within_a_few_percent(tmp_path):
    sources = tuple(PretrainSource(name, str(_documents(tmp_path / f"{name}.jsonl", 3000, name)), "pretrain_mix",
                                   weight=weight) for name, weight in (("a", 0.6), ("b", 0.3), ("c", 0.1)))
    spec = DataSpec("unused", pretrain=sources, pretrain_max_train=2000, validation_fraction=0.05)
    train = load_collection(spec, "pretrain")["train"]
    realised = Counter(e.source for e in train)
    assert sum(realised.values()) == 2000 and train.realised == realised
    for name, weight in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        assert abs(realised[name] / 2000 - weight) < 0.03, realised
    assert train.weights == {"a": 0.6, "b": 0.3, "c": 0.1}
    again = load_collection(spec, "pretrain")["train"]
    assert [e.id for e in again] == [e.id for e in train]  # seeded


def test_weighted_mix_stops_when_a_source_runs_out(tmp_path):
    sources = (PretrainSource("big", str(_documents(tmp_path / "big.jsonl", 1000, "big")), "pretrain_mix", weight=1),
               PretrainSource("small", str(_documents(tmp_path / "small.jsonl", 50, "small")), "pretrain_mix",
                              weight=1))
    train = load_collection(DataSpec("unused", pretrain=sources, validation_fraction=0.1), "pretrain")["train"]
    realised = Counter(e.source for e in train)
    assert realised["small"] == 45 and 30 <= realised["big"] <= 60  # equal shares, not 955 + 45


def test_dataset_source_pretrains_on_the_task_inputs_and_targets(tmp_path, corpus_dir):
    spec = corpus_data_spec(corpus_dir, pretrain=(PretrainSource("dataset", str(corpus_dir / "samsum"), "dataset_name",
                                                                 task_texts=True),))
    pre = load_collection(spec, "pretrain")
    dialogues = load_dialogue_split(spec, "train").examples
    texts = {t for e in dialogues for t in (e.input_text, e.target_text)}
    pairs = pre["train"].examples
    assert pairs and {e.source for e in pairs} == {"dataset"}
    assert all(" ".join(f"{e.input_text} {e.target_text}".split()) in {" ".join(t.split()) for t in texts}
               for e in pairs[:50])
    assert len(pre["validation"].examples) > 0  # from the task's validation split
    assert pre["train"].skipped.counts.keys() <= {"dataset:too_short_to_split"}


def test_mix_source_text_field_and_template(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", [{"title": f"Title {i}", "body": f"Body {i} one two three four.",
                                             "text": "ignored"} for i in range(20)])
    spec = DataSpec("unused", validation_fraction=0.0)
    by_field = load_pretrain_source(spec, PretrainSource("d", str(path), "pretrain_mix", text_field="body"))
    assert by_field["train"].examples[0].input_text.startswith("Body 0")
    templated = load_pretrain_source(spec, PretrainSource("d", str(path), "pretrain_mix",
                                                          text_template="{title}. {body}"))
    assert templated["train"].examples[0].input_text == "Title 0."
    with pytest.raises(UserError, match=r"source 'd'.*no column 'summary'.*title"):
        load_pretrain_source(spec, PretrainSource("d", str(path), "pretrain_mix", text_template="{summary}"))
    with pytest.raises(UserError, match=r"source 'd'.*no column 'abstract'"):
        load_pretrain_source(spec, PretrainSource("d", str(path), "pretrain_mix", text_field="abstract"))
