"""bench/bench_quality.py's report parts: the rule rows on the eval's pairs, each stage's wall time, the samples."""

import json

import pytest

from tests.factories import import_bench


def _corpus(tmp_path, rows, columns):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "README.md").write_text("Built.\n\n```json\n" + json.dumps({"columns": columns}) + "\n```\n")
    return tmp_path


def test_the_first_sentence_rule_stops_at_the_first_sentence_end_across_lines():
    q = import_bench("bench_quality")
    assert q.first_sentence("Print lines\nthat match. Then more. And more.") == "Print lines that match."
    assert q.first_sentence("no end at all") == "no end at all"
    assert q.first_sentence("version 2.5 is here! yes") == "version 2.5 is here!"  # a decimal point is no end
    assert q.first_words(" ".join(str(i) for i in range(20))) == " ".join(str(i) for i in range(12))


def test_rules_score_the_first_n_pairs_of_the_corpus_input_field_against_its_target(tmp_path):
    q = import_bench("bench_quality")
    rows = [{"description": "Copy files. And more words here.", "synopsis": "Copy files."},
            {"description": "Remove them all. Not this.", "synopsis": "something else entirely"},
            {"description": "never scored", "synopsis": "never scored"}]
    corpus = _corpus(tmp_path, rows, {"dataset_input_field": "description", "dataset_target_field": "synopsis"})
    scores = q.rule_scores(corpus, 2)
    sentence = scores["rule: the input's first sentence"]["rougeL"]
    assert sentence == pytest.approx(0.5)  # a perfect first pair, a second with no word in common
    assert 0 < scores["rule: the input's first 12 words"]["rougeL"] < sentence


def test_the_docstring_corpus_rules_read_the_body_not_the_template_with_its_qualname(tmp_path):
    q = import_bench("bench_quality")
    corpus = _corpus(tmp_path, [{"qualname": "a.b", "body": "Returns x. More.", "summary_line": "Returns x."}],
                     q.DOCSTRING_COLUMNS)
    assert q.rule_scores(corpus, 5)["rule: the input's first sentence"]["rougeL"] == pytest.approx(1.0)


def test_stage_times_run_from_each_stage_s_first_record_to_the_next_one_s():
    q = import_bench("bench_quality")
    records = [{"stage": "a", "time": 1.0}, {"stage": "a", "time": 5.0}, {"summary": 1},
               {"stage": "b", "time": 7.5}, {"stage": "b", "time": 9.0}]
    assert q.stage_seconds(records) == {"a": 6.5, "b": 1.5}
    assert q.stage_seconds([]) == {}


def test_samples_are_a_table_without_ids_or_inputs_and_with_pipes_escaped():
    q = import_bench("bench_quality")
    table = q.samples_markdown([{"id": 1, "input": "long text", "reference": "a | b", "latent": "c\nd"}])
    assert table.splitlines() == ["| reference | latent |", "|---|---|", "| a / b | c d |"]
