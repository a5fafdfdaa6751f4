"""The loader: batches of both formats, every reader giving the same batch, caps, workers, the batch keys."""

from __future__ import annotations

import numpy as np
import pytest

from latentbridge.data.batch import (ATTENTION_MASK, ID, INPUT_IDS, INPUT_LATENT_MASK, INPUT_LATENTS,
                                     TARGET_ATTENTION_MASK, TARGET_IDS, TARGET_LATENT_MASK, TARGET_LATENTS, TARGET_TEXT,
                                     TEXT, CacheBatch, LatentObjectiveBatch, TokenObjectiveBatch)
from latentbridge.data.loader import CacheDataset, Collate, make_loader, select_indices
from latentbridge.training.stages import OBJECTIVES

from tests.data.builders import build_from_corpus
from tests.factories import FAKE_DIM, FAKE_K, small_cache_spec


def test_tiny_end_to_end_preprocess_and_loader(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    result = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, collections=("pretrain", "dialogue"))
    cache = result.cache
    assert not result.reused
    assert cache.names() == ["dialogue/test", "dialogue/train", "dialogue/validation",
                             "pretrain/train", "pretrain/validation"]
    train = cache.split("dialogue", "train")
    assert len(train) == 64 and len(cache.split("dialogue", "test")) == 16
    pre = cache.split("pretrain", "train")
    assert len(pre) == 60 and set(cache.manifest["splits"]["pretrain/train"]["sources"]) == {"wikitext", "arxiv", "english"}
    rec = train[5]
    assert rec["input_latents"].shape == (FAKE_K, FAKE_DIM) and rec["target_latents"].shape == (FAKE_K, FAKE_DIM)
    assert rec["target_ids"][-1] == tokenizer.eos_token_id and rec["target_attention_mask"].sum() == len(rec["target_ids"])
    for workers in (0, 2):
        order = np.random.default_rng(0).permutation(len(train)).tolist()
        loader = make_loader(CacheDataset(train), order, 8, Collate(train.pad_token_id), num_workers=workers,
                             prefetch_factor=2 if workers else None)
        batch = next(iter(loader))
        assert batch["input_latents"].shape == (8, FAKE_K, FAKE_DIM)
        assert batch["target_latent_mask"].all()
        assert batch["target_ids"].shape == batch["target_attention_mask"].shape
        lengths = batch["target_attention_mask"].sum(1)
        assert (batch["target_ids"][batch["target_attention_mask"] == 0] == train.pad_token_id).all()
        assert lengths.max() == batch["target_ids"].shape[1]


def test_select_indices_honours_source_and_total_caps(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    split = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, collections=("pretrain",),
                              pretrain_max_train=None).cache.split("pretrain", "train")
    counts = lambda idx: {n: int((split.sources[idx] == i).sum()) for i, n in enumerate(split.source_names)}
    assert len(select_indices(split)) == len(split)
    idx = select_indices(split, source_caps={"wikitext": 10, "arxiv": None})
    assert counts(idx)["wikitext"] == 10 and counts(idx)["arxiv"] == len(split.indices_of("arxiv"))
    idx = select_indices(split, total_cap=30)
    assert len(idx) == 30 and set(counts(idx).values()) == {10}
    assert np.array_equal(select_indices(split, total_cap=30, seed=1), select_indices(split, total_cap=30, seed=1))


@pytest.mark.parametrize("fields", [{}, {"store_text": True, "store_input_ids": True, "store_attention_mask": True},
                                    {"store_target_ids": False, "store_attention_mask": True}])
@pytest.mark.parametrize("int8", [True, False])
def test_npy_and_jsonl_give_identical_batches(tmp_path, small_corpus_dir, tokenizer, fake_encoder, fields, int8):
    import torch

    splits = {fmt: build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                                     small_cache_spec(format=fmt, int8=int8, **fields)).cache.split("dialogue", "train")
                         for fmt in ("jsonl", "npy")}
    assert splits["npy"].binary and not splits["jsonl"].binary
    rows = [5, 0, 63, 17, 17, 2, 40]
    batches = {fmt: next(iter(torch.utils.data.DataLoader(CacheDataset(s), batch_size=len(rows), sampler=rows,
                                                          collate_fn=Collate(s.pad_token_id))))
               for fmt, s in splits.items()}
    a, b = batches["jsonl"], batches["npy"]
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype, key
            torch.testing.assert_close(a[key], b[key], msg=key)
        else:
            assert a[key] == b[key], key
    for i in rows:  # single records agree too
        x, y = splits["jsonl"][i], splits["npy"][i]
        assert sorted(x) == sorted(y)
        for key in x:
            if isinstance(x[key], np.ndarray):
                np.testing.assert_array_equal(x[key], y[key])
            else:
                assert x[key] == y[key]


def test_npy_loader_with_workers_and_subset(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    split = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(format="npy")).cache.split("dialogue", "train")
    ds = CacheDataset(split, indices=np.arange(10, 40))
    order = np.random.default_rng(0).permutation(len(ds)).tolist()
    loader = make_loader(ds, order, 8, Collate(split.pad_token_id), num_workers=2, prefetch_factor=2)
    seen = sorted(int(i) for batch in loader for i in batch["index"])
    assert seen == list(range(10, 40))


@pytest.mark.parametrize("int8", [True, False])
def test_every_reader_gives_the_same_batch(tmp_path, small_corpus_dir, tokenizer, fake_encoder, int8):
    """jsonl records + Collate, npy batches with and without metadata (the Trainer's), and npy records."""
    import torch

    splits = {fmt: build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                                     small_cache_spec(format=fmt, int8=int8)).cache.split("dialogue", "train")
                         for fmt in ("jsonl", "npy")}
    rows = [9, 3, 3, 60, 0]
    jsonl, npy = splits["jsonl"], splits["npy"]
    reference = Collate(jsonl.pad_token_id)([dict(jsonl[i], index=i) for i in rows])
    readers = {"npy": CacheDataset(npy).__getitems__(rows),
               "npy, no metadata": CacheDataset(npy, metadata=False).__getitems__(rows),
               "npy records": Collate(npy.pad_token_id)([dict(npy[i], index=i) for i in rows])}
    for name, batch in readers.items():
        tensors = {k for k, v in reference.items() if isinstance(v, torch.Tensor)}
        assert tensors == {k for k, v in batch.items() if isinstance(v, torch.Tensor)}, name
        for key in tensors:
            assert batch[key].dtype == reference[key].dtype, (name, key)
            torch.testing.assert_close(batch[key], reference[key], rtol=0, atol=0, msg=f"{name}: {key}")
        assert batch["source"] == reference["source"]
        assert name == "npy, no metadata" or batch["id"] == reference["id"]


OBJECTIVE_BATCHES = {"latent": LatentObjectiveBatch, "tokens": TokenObjectiveBatch}


def test_each_objective_declares_the_batch_it_reads():
    assert set(OBJECTIVE_BATCHES) == set(OBJECTIVES)
    assert set(LatentObjectiveBatch.__required_keys__) == {INPUT_LATENTS, INPUT_LATENT_MASK, TARGET_LATENTS,
                                                           TARGET_LATENT_MASK}
    assert set(TokenObjectiveBatch.__required_keys__) - set(LatentObjectiveBatch.__required_keys__) == {
        TARGET_IDS, TARGET_ATTENTION_MASK}


@pytest.mark.parametrize("fmt", ["jsonl", "npy"])
@pytest.mark.parametrize("fields, stored", [
    ({}, {TARGET_IDS, TARGET_ATTENTION_MASK}),
    ({"store_text": True, "store_input_ids": True, "store_attention_mask": True},
     {TARGET_IDS, TARGET_ATTENTION_MASK, INPUT_IDS, ATTENTION_MASK, TEXT, TARGET_TEXT}),
    ({"store_target_ids": False}, {TARGET_ATTENTION_MASK}),
])
def test_batches_hold_exactly_the_declared_keys(tmp_path, small_corpus_dir, tokenizer, fake_encoder, fmt, fields, stored):
    cache = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(format=fmt, **fields),
                              collections=("pretrain", "dialogue")).cache
    declared = CacheBatch.__required_keys__ | CacheBatch.__optional_keys__
    for collection in ("pretrain", "dialogue"):  # what the pretraining and the dialogue stages read
        split = cache.split(collection, "train")
        for metadata in (True, False):  # training reads npy batches without the metadata (modes/train.py)
            loader = make_loader(CacheDataset(split, metadata=metadata), list(range(8)), 4, Collate(split.pad_token_id))
            batch = next(iter(loader))
            read_from_lines = {ID, *({TEXT, TARGET_TEXT} & stored)} if metadata or fmt == "jsonl" else set()
            assert set(batch) == CacheBatch.__required_keys__ | (stored - {TEXT, TARGET_TEXT}) | read_from_lines
            assert set(batch) <= declared
            for objective, keys in OBJECTIVE_BATCHES.items():
                readable = keys.__required_keys__ <= set(batch)
                assert readable == (objective == "latent" or TARGET_IDS in stored), objective
