"""Reading a cache: damaged records and columns reported by name, the offsets scan, int8 against fp32."""

from __future__ import annotations

import numpy as np
import pytest

from latentbridge.data.cache import open_cache
from latentbridge.errors import UserError

from tests.data.builders import build_from_corpus
from tests.factories import small_cache_spec


def test_corrupted_record_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    path = folder / "dialogue/train.jsonl"
    data = bytearray(path.read_bytes())
    data[30:40] = b"#" * 10  # same size, garbage inside record 0
    path.write_bytes(bytes(data))
    split = open_cache(folder).split("dialogue", "train")
    with pytest.raises(UserError, match="train.jsonl"):
        split[0]
    with pytest.raises(UserError, match="checksum"):
        open_cache(folder, full_check=True)


def test_int8_cache_matches_fp32_cache(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=True)).cache.split("dialogue", "train")
    b = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False)).cache.split("dialogue", "train")
    x = np.stack([b[i]["input_latents"] for i in range(len(b))])
    y = np.stack([a[i]["input_latents"] for i in range(len(a))])
    cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    assert cos.mean() >= 0.999
    assert a.path.stat().st_size < b.path.stat().st_size


def test_without_offsets_index_reads_after_one_scan(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    with_index = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.split("dialogue", "train")
    no_index = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                                 small_cache_spec(write_offsets_index=False)).cache.split("dialogue", "train")
    assert not no_index.path.with_name("train.offsets.npy").exists()
    assert no_index[10]["id"] == with_index[10]["id"]
    np.testing.assert_array_equal(no_index.offsets, with_index.offsets)


def test_truncated_npy_column_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(format="npy")).cache.folder
    path = folder / "dialogue/train.input_latents.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="train.input_latents.npy"):
        open_cache(folder)
