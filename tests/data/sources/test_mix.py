"""Mixing pretraining sources: caps, weights realised, a weighted mix stopping when a source runs out."""

from __future__ import annotations

from collections import Counter

from latentbridge.data.sources import DataSpec, PretrainSource, load_collection

from tests.data.builders import write_jsonl
from tests.factories import corpus_data_spec


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


def write_documents(path, n, tag, column="text"):
    return write_jsonl(path, [{column: f"{tag} document {i} begins here. It ends a sentence later.", "n": i}
                              for i in range(n)])


def test_weighted_mix_is_realised_within_a_few_percent(tmp_path):
    sources = tuple(PretrainSource(name, str(write_documents(tmp_path / f"{name}.jsonl", 3000, name)), "pretrain_mix",
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
    sources = (PretrainSource("big", str(write_documents(tmp_path / "big.jsonl", 1000, "big")), "pretrain_mix", weight=1),
               PretrainSource("small", str(write_documents(tmp_path / "small.jsonl", 50, "small")), "pretrain_mix",
                              weight=1))
    train = load_collection(DataSpec("unused", pretrain=sources, validation_fraction=0.1), "pretrain")["train"]
    realised = Counter(e.source for e in train)
    assert realised["small"] == 45 and 30 <= realised["big"] <= 60  # equal shares, not 955 + 45
