"""Building or reusing the cache: stored fields, fingerprint reuse, rebuilds, caches of older versions."""

from __future__ import annotations

import time

import numpy as np

from latentbridge.data.cache import read_manifest
from latentbridge.data.encoding import build_cache
from latentbridge.data.loader import CacheDataset, Collate, make_loader

from tests.data.builders import build_from_corpus
from tests.factories import small_cache_spec


def test_records_match_the_encoder_output(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    cache = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False, store_input_ids=True)).cache
    rec = cache.split("dialogue", "train")[7]
    import torch

    ids = torch.from_numpy(rec["input_ids"])[None]
    expected = fake_encoder(ids, torch.ones_like(ids))[0].numpy()
    np.testing.assert_allclose(rec["input_latents"], expected, rtol=1e-6, atol=1e-6)


def test_store_flags_change_the_stored_fields(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    minimal = small_cache_spec(store_target_ids=False, store_target_attention_mask=False)
    everything = small_cache_spec(store_text=True, store_input_ids=True, store_attention_mask=True)
    rec_min = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, minimal).cache.split("dialogue", "train")[0]
    cache_all = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, everything).cache
    rec_all = cache_all.split("dialogue", "train")[0]
    base = {"id", "source", "input_latents", "target_latents"}
    assert set(rec_min) == base
    assert set(rec_all) == base | {"text", "target_text", "input_ids", "attention_mask", "target_ids",
                                   "target_attention_mask"}
    assert cache_all.manifest["fields"] == ["text", "input_ids", "attention_mask", "target_ids", "target_attention_mask"]
    split = cache_all.split("dialogue", "train")
    batch = next(iter(make_loader(CacheDataset(split), range(len(split)), 4, Collate(split.pad_token_id))))
    assert batch["input_ids"].shape == batch["attention_mask"].shape and len(batch["text"]) == 4


def test_same_settings_reuse_the_cache_without_loading_anything(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    first = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder)

    def boom():
        raise AssertionError("must not load data or models when the cache is reused")

    start = time.perf_counter()
    again = build_cache(tmp_path, {"model": "fake"}, boom, boom, small_cache_spec(), log=lambda m: None)
    assert again.reused and again.cache.folder == first.cache.folder
    assert time.perf_counter() - start < 2.0


def test_changed_settings_build_a_new_cache(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    b = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(max_target_len=12)).cache
    c = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, parts={"model": "other"}).cache
    d = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False)).cache
    assert len({a.folder, b.folder, c.folder, d.folder}) == 4
    # batch size changes speed, not content: same cache
    e = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(batch_size=3))
    assert e.reused and e.cache.folder == a.folder


def test_no_reuse_rebuilds_in_place(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    created = read_manifest(a.folder)
    b = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, reuse=False)
    assert not b.reused and b.cache.folder == a.folder and read_manifest(a.folder) is not None
    assert created["fingerprint"] == b.cache.fingerprint


def test_corrupted_cache_is_rebuilt_by_the_builder(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    (folder / "dialogue/test.jsonl").write_bytes(b"")
    again = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder)
    assert not again.reused and len(again.cache.split("dialogue", "test")) == 16


def test_cache_built_before_issue_10_is_reused_for_the_same_files(tmp_path, legacy_files, small_corpus_dir,
                                                                  tokenizer, fake_encoder):
    from latentbridge.files import hash_path

    old = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder,  # as 03780ed fingerprinted the backbone
                            parts={"encoder_files": "f83f62375060447000759d63457080a2"}).cache

    def boom():
        raise AssertionError("must not load data or models when the cache is reused")

    again = build_cache(tmp_path, {"encoder_files": hash_path(legacy_files / "backbone")}, boom, boom, small_cache_spec(),
                        log=lambda m: None)
    assert again.reused and again.cache.folder == old.folder
    weights = legacy_files / "backbone" / "sub" / "weights.bin"
    weights.write_bytes(weights.read_bytes()[::-1])
    changed = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                                parts={"encoder_files": hash_path(legacy_files / "backbone")})
    assert not changed.reused and changed.cache.folder != old.folder
