"""Pretraining documents: split into pairs, validation split, text columns, the dataset's own texts."""

from __future__ import annotations

import pytest

from latentbridge.data.sources import (Columns, DataSpec, PretrainSource, load_collection, load_dialogue_split,
                                       load_pretrain_source, split_document)
from latentbridge.errors import UserError

from tests.data.builders import DOCS, docs_folder, write_jsonl
from tests.factories import corpus_data_spec


def test_unknown_text_column_is_a_clear_error(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"title": "a", "label": "b", "n": 1}] * 3)
    spec = DataSpec("unused", hf_cache_dir=str(tmp_path / "hf"))
    with pytest.raises(UserError, match=r"arxiv_dataset.*text column.*title"):
        load_pretrain_source(spec, PretrainSource("arxiv", str(path), "arxiv_dataset"))


def test_the_dataset_source_pretrains_on_the_dialogues_own_texts(tmp_path):
    spec = DataSpec(str(docs_folder(tmp_path)), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    source = PretrainSource("dataset", spec.dataset, "dataset_name", task_texts=True)
    out = load_pretrain_source(spec, source)
    joined = {f"{e.input_text} {e.target_text}" for e in out["train"].examples}
    assert joined == {r["body"] for r in DOCS} | {r["summary_line"] for r in DOCS}
    assert len(out["validation"].examples) == 12  # the dataset's validation split: 6 inputs + 6 targets


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
    path = write_jsonl(tmp_path / "docs.jsonl", [{"title": f"Title {i}", "body": f"Body {i} one two three four.",
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
