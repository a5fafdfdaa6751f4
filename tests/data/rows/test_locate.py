"""Locating a split: a missing file or split named, a folder of shards as one train split."""

from __future__ import annotations

import pytest

from latentbridge.data.rows import split_rows
from latentbridge.data.sources import load_collection
from latentbridge.errors import UserError

from tests.data.builders import write_jsonl
from tests.factories import corpus_data_spec


def test_missing_local_file_names_the_field(tmp_path):
    with pytest.raises(UserError, match=r"wikitext_dataset.*does not exist"):
        split_rows(str(tmp_path / "nope.jsonl"), "wikitext_dataset", "train")
    with pytest.raises(UserError, match=r"dataset_name.*does not exist"):
        split_rows("./data/samsum_missing", "dataset_name", "train")


def test_missing_split_lists_available_ones(tmp_path, corpus_dir):
    spec = corpus_data_spec(corpus_dir, validation_split="dev2")
    with pytest.raises(UserError, match=r"no split 'dev2'.*test.*train.*validation"):
        load_collection(spec, "dialogue")


def test_folder_of_shards_is_one_train_split(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(3):
        write_jsonl(folder / f"part{k}.jsonl", [{"text": f"Shard {k} doc {i}. It has two sentences."} for i in range(10)])
    (folder / ".cache").mkdir()
    write_jsonl(folder / ".cache" / "junk.jsonl", [{"text": "ignored. really ignored."}])
    assert split_rows(str(folder), "english_pretrain_dataset", "train").count() == 30
