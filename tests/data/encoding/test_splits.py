"""Writing a split: streamed chunk by chunk, truncation and skipped rows reported, mixes recorded."""

from __future__ import annotations

import json

import pytest

from latentbridge.data.cache import SplitWriter
from latentbridge.data.rows import Skips
from latentbridge.data.sources import Example, PretrainSource, SplitStream, load_collection
from latentbridge.errors import UserError

from tests.data.builders import build_from_splits, corpus_splits
from tests.factories import FakeEncoder, cache_folders, corpus_data_spec, small_cache_spec


def test_records_are_read_encoded_and_written_one_chunk_at_a_time(tmp_path, tokenizer, monkeypatch):
    read, written = [], []
    write = SplitWriter.write
    monkeypatch.setattr(SplitWriter, "write", lambda self, line, source: (written.append(1), write(self, line, source)))

    def examples(skips: Skips):
        for i in range(50):
            read.append(i)
            yield Example(f"x{i}", "dialogue", f"Anna: lunch at {i % 9}? Ben: sure", "Anna and Ben meet.")

    seen = []  # at each encode call: (examples read so far, records written so far)

    class Watching(FakeEncoder):
        def __call__(self, ids, mask):
            seen.append((len(read), len(written)))
            return super().__call__(ids, mask)

    enc = Watching(len(tokenizer))
    stream = lambda: {"dialogue": {"train": SplitStream(examples, ("dialogue",), lambda: 50)}}
    cache = build_from_splits(tmp_path, stream, tokenizer, enc, small_cache_spec(batch_size=5, chunk_size=10)).cache
    assert len(cache.split("dialogue", "train")) == 50
    # 5 chunks of 10, each encoded (inputs, targets: 2 x 2 batches) before the next is read, and written before
    # the next is encoded
    assert seen == [(10 * (k + 1), 10 * k) for k in range(5) for _ in range(4)]


def test_truncation_is_counted_per_split_and_stored(tmp_path, tokenizer, fake_encoder):
    long, short = "Anna: " + "lunch at the cafe " * 30, "Anna: hi Ben"

    def examples(skips: Skips):
        for i in range(12):
            yield Example(f"x{i}", "dialogue", long if i % 3 == 0 else short,
                          "Anna and Ben meet " * 10 if i % 4 == 0 else "They meet.", "d.jsonl", i + 1)

    messages = []
    stream = lambda: {"dialogue": {"train": SplitStream(examples, ("dialogue",))}}
    cache = build_from_splits(tmp_path, stream, tokenizer, fake_encoder, small_cache_spec(max_seq_len=16, max_target_len=12),
                              log=messages.append).cache
    entry = cache.manifest["splits"]["dialogue/train"]
    first = {"inputs": ["d.jsonl line 1", "d.jsonl line 4", "d.jsonl line 7", "d.jsonl line 10"],
             "targets": ["d.jsonl line 1", "d.jsonl line 5", "d.jsonl line 9"]}
    assert entry["truncated"] == {"inputs": 4, "targets": 3, "max_seq_len": 16, "max_target_len": 12, "first": first}
    said = [m for m in messages if "were cut" in m or "cut " in m]
    assert said == ["dialogue/train: 4 of 12 inputs were longer than max_seq_len (16 tokens) and 3 targets longer "
                    "than max_target_len (12); they were cut. Raise --max-seq-len / --max-target-len to keep more "
                    "of them.",
                    "  cut inputs: d.jsonl line 1, d.jsonl line 4, d.jsonl line 7, d.jsonl line 10",
                    "  cut targets: d.jsonl line 1, d.jsonl line 5, d.jsonl line 9"]


def test_skipped_rows_are_reported_by_user_file_and_line(tmp_path, tokenizer, fake_encoder):
    folder = tmp_path / "dlg"
    folder.mkdir()
    rows = [json.dumps({"dialogue": f"A: hi {i}", "summary": "A greets."}) for i in range(6)]
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(rows[:2] + ["{oops"] + rows[2:]) + "\n")
    spec = corpus_data_spec(tmp_path, dataset=str(folder))
    messages = []
    cache = build_from_splits(tmp_path / "cache", lambda: {"dialogue": load_collection(spec, "dialogue")}, tokenizer,
                              fake_encoder, log=messages.append).cache
    entry = cache.manifest["splits"]["dialogue/train"]
    assert entry["count"] == 6 and entry["skipped"] == {"malformed_json": 1}
    train = str(folder / "train.jsonl")
    assert entry["skipped_rows"] == {train: {"malformed_json": {"count": 1, "unit": "line", "first": [3]}}}
    assert f"  {train}: 1 malformed JSON (line 3)" in messages
    assert not list(tmp_path.rglob("*.tmp*")) and not [n for n in cache_folders(tmp_path / "cache") if n.startswith(".")]


def test_a_weighted_mix_records_its_weights_and_realised_counts(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    spec = corpus_data_spec(small_corpus_dir)
    weighted = tuple(PretrainSource(s.name, s.location, "pretrain_mix", weight=w)
                     for s, w in zip(spec.pretrain, (2.0, 1.0, 1.0)))
    messages = []
    cache = build_from_splits(tmp_path, corpus_splits(small_corpus_dir, pretrain=weighted, pretrain_max_train=None), tokenizer,
                              fake_encoder, log=messages.append).cache
    entry = cache.manifest["splits"]["pretrain/train"]
    assert entry["weights"] == {"wikitext": 2.0, "arxiv": 1.0, "english": 1.0}
    assert entry["sources"]["wikitext"] == 95 and sum(entry["sources"].values()) == entry["count"]
    assert any(m.startswith("pretrain/train: mix realised wikitext 95 (") for m in messages)
    split = cache.split("pretrain", "train")
    assert split.source_weights == {"wikitext": 2.0, "arxiv": 1.0, "english": 1.0}


def test_an_all_invalid_training_split_is_an_error_naming_its_rows(tmp_path, tokenizer, fake_encoder):
    folder = tmp_path / "dlg"
    folder.mkdir()
    good = json.dumps({"dialogue": "A: hi", "summary": "A greets."})
    (folder / "train.jsonl").write_text(good.replace("A: hi", " ") + "\n" + good.replace("A greets.", "") + "\n")
    for split in ("validation", "test"):
        (folder / f"{split}.jsonl").write_text(good + "\n")
    spec = corpus_data_spec(tmp_path, dataset=str(folder))
    with pytest.raises(UserError, match=r"dialogue/train is empty: all 2 of its rows were skipped .*train.jsonl: 2 "
                                        r"missing or empty text \(lines 1, 2\)"):
        build_from_splits(tmp_path / "cache", lambda: {"dialogue": load_collection(spec, "dialogue")}, tokenizer, fake_encoder)
    assert not list((tmp_path / "cache").rglob("*.jsonl"))
