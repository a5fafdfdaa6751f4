"""The cache: end-to-end build, stored fields, fingerprint reuse, atomic builds, corruption, int8 fidelity."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latentbridge.data.cache import MANIFEST, dequantize_int8, open_cache, quantize_int8, read_manifest
from latentbridge.data.loader import CacheDataset, Collate, make_loader, select_indices
from latentbridge.data.encoding import build_cache, encode_batched
from latentbridge.data.sources import load_collection
from latentbridge.errors import UserError

from tests.factories import FAKE_DIM, FAKE_K, FakeEncoder, corpus_data_spec, fake_tokenizers, small_cache_spec

REPO = Path(__file__).resolve().parents[2]


def _build(root, small_corpus_dir, tok, enc, spec=None, parts=None, collections=("dialogue",), reuse=True, **data):
    ds = corpus_data_spec(small_corpus_dir, **{"dialogue_max_train": 64, "pretrain_max_train": 60, **data})
    return build_cache(root, parts or {"model": "fake"},
                       lambda: {c: load_collection(ds, c) for c in collections},
                       lambda: (fake_tokenizers(tok), enc), spec or small_cache_spec(), reuse=reuse, log=lambda m: None)


def test_tiny_end_to_end_preprocess_and_loader(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    result = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, collections=("pretrain", "dialogue"))
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


def test_records_match_the_encoder_output(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    cache = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False, store_input_ids=True)).cache
    rec = cache.split("dialogue", "train")[7]
    import torch

    ids = torch.from_numpy(rec["input_ids"])[None]
    expected = fake_encoder(ids, torch.ones_like(ids))[0].numpy()
    np.testing.assert_allclose(rec["input_latents"], expected, rtol=1e-6, atol=1e-6)


def test_store_flags_change_the_stored_fields(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    minimal = small_cache_spec(store_target_ids=False, store_target_attention_mask=False)
    everything = small_cache_spec(store_text=True, store_input_ids=True, store_attention_mask=True)
    rec_min = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, minimal).cache.split("dialogue", "train")[0]
    cache_all = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, everything).cache
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
    first = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder)

    def boom():
        raise AssertionError("must not load data or models when the cache is reused")

    start = time.perf_counter()
    again = build_cache(tmp_path, {"model": "fake"}, boom, boom, small_cache_spec(), log=lambda m: None)
    assert again.reused and again.cache.folder == first.cache.folder
    assert time.perf_counter() - start < 2.0


def test_changed_settings_build_a_new_cache(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    b = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(max_target_len=12)).cache
    c = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, parts={"model": "other"}).cache
    d = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False)).cache
    assert len({a.folder, b.folder, c.folder, d.folder}) == 4
    # batch size changes speed, not content: same cache
    e = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(batch_size=3))
    assert e.reused and e.cache.folder == a.folder


def test_no_reuse_rebuilds_in_place(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    created = read_manifest(a.folder)
    b = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, reuse=False)
    assert not b.reused and b.cache.folder == a.folder and read_manifest(a.folder) is not None
    assert created["fingerprint"] == b.cache.fingerprint


KILL_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.factories import FakeEncoder, corpus_data_spec, fake_tokenizers, make_tokenizer, small_cache_spec
from latentbridge.data.sources import load_collection
from latentbridge.data.encoding import build_cache
tok = make_tokenizer()
inner = FakeEncoder(len(tok))
def slow(ids, mask):
    time.sleep(0.05)
    return inner(ids, mask)
ds = corpus_data_spec(Path({corpus!r}), dialogue_max_train=64)
build_cache(Path({root!r}), {{"model": "fake"}}, lambda: {{"dialogue": load_collection(ds, "dialogue")}},
            lambda: (fake_tokenizers(tok), slow), small_cache_spec(batch_size=4, chunk_size=4), log=print)
"""


def test_killed_build_never_looks_complete_and_is_rebuilt(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    root = tmp_path / "cache"
    script = KILL_SCRIPT.format(repo=str(REPO), corpus=str(small_corpus_dir), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until records are being written
            tmp = [p for p in root.glob(".tmp-*")] if root.exists() else []
            if tmp and any(f.stat().st_size > 0 for f in tmp[0].rglob("*.jsonl")):
                break
            assert proc.poll() is None, "build finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(root.glob(f"*/{MANIFEST}"))  # nothing looks complete
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == []

    result = _build(root, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(batch_size=4))
    assert not result.reused and len(result.cache.split("dialogue", "train")) == 64
    assert not list(root.glob(".tmp-*"))  # the dead build's leftovers are gone


def test_failed_build_leaves_existing_cache_intact(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    good = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    before = {p: p.read_bytes() for p in good.folder.rglob("*") if p.is_file()}

    def failing(ids, mask):
        raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(RuntimeError):
        _build(tmp_path, small_corpus_dir, tokenizer, failing, reuse=False)
    assert {p: p.read_bytes() for p in good.folder.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".tmp-*"))
    open_cache(good.folder, full_check=True)


@pytest.mark.parametrize("victim", ["dialogue/train.jsonl", "dialogue/train.offsets.npy", "manifest.json"])
def test_truncated_file_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder, victim):
    folder = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    path = folder / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=victim.split("/")[-1]):
        open_cache(folder).split("dialogue", "train")


def test_corrupted_record_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    path = folder / "dialogue/train.jsonl"
    data = bytearray(path.read_bytes())
    data[30:40] = b"#" * 10  # same size, garbage inside record 0
    path.write_bytes(bytes(data))
    split = open_cache(folder).split("dialogue", "train")
    with pytest.raises(UserError, match="train.jsonl"):
        split[0]
    with pytest.raises(UserError, match="checksum"):
        open_cache(folder, full_check=True)


def test_corrupted_cache_is_rebuilt_by_the_builder(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    (folder / "dialogue/test.jsonl").write_bytes(b"")
    again = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder)
    assert not again.reused and len(again.cache.split("dialogue", "test")) == 16


def test_int8_latents_keep_mean_cosine_above_0_999():
    rng = np.random.default_rng(0)
    for x in (rng.standard_normal((512, 8, 256)), rng.standard_normal((512, 8, 256)) ** 3,
              rng.uniform(-1, 1, (512, 8, 768)) * rng.uniform(0.01, 100, (512, 8, 1))):
        q, s = quantize_int8(x)
        y = dequantize_int8(q, s)
        cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
        assert cos.mean() >= 0.999 and q.dtype == np.int8 and s.dtype == np.float32


def test_int8_cache_matches_fp32_cache(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    a = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=True)).cache.split("dialogue", "train")
    b = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(int8=False)).cache.split("dialogue", "train")
    x = np.stack([b[i]["input_latents"] for i in range(len(b))])
    y = np.stack([a[i]["input_latents"] for i in range(len(a))])
    cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    assert cos.mean() >= 0.999
    assert a.path.stat().st_size < b.path.stat().st_size


def test_without_offsets_index_reads_after_one_scan(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    with_index = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.split("dialogue", "train")
    no_index = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                      small_cache_spec(write_offsets_index=False)).cache.split("dialogue", "train")
    assert not no_index.path.with_name("train.offsets.npy").exists()
    assert no_index[10]["id"] == with_index[10]["id"]
    np.testing.assert_array_equal(no_index.offsets, with_index.offsets)


def test_length_sorting_cuts_padding(tokenizer):
    seqs = [[5] * n for n in np.random.default_rng(0).integers(3, 60, 256)]
    sorted_enc, plain_enc = FakeEncoder(len(tokenizer)), FakeEncoder(len(tokenizer))
    a = encode_batched(sorted_enc, seqs, 0, 16, sort_by_length=True)
    b = encode_batched(plain_enc, seqs, 0, 16, sort_by_length=False)
    padded = lambda enc: sum(bsz * t for bsz, t in enc.calls)
    assert padded(sorted_enc) < 0.75 * padded(plain_enc)
    for x, y in zip(a, b):  # same results, original order
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_select_indices_honours_source_and_total_caps(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    split = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, collections=("pretrain",),
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

    splits = {fmt: _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
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
    split = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(format="npy")).cache.split("dialogue", "train")
    ds = CacheDataset(split, indices=np.arange(10, 40))
    order = np.random.default_rng(0).permutation(len(ds)).tolist()
    loader = make_loader(ds, order, 8, Collate(split.pad_token_id), num_workers=2, prefetch_factor=2)
    seen = sorted(int(i) for batch in loader for i in batch["index"])
    assert seen == list(range(10, 40))


def test_truncated_npy_column_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    folder = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(format="npy")).cache.folder
    path = folder / "dialogue/train.input_latents.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="train.input_latents.npy"):
        open_cache(folder)


def test_a_later_builder_of_a_complete_cache_keeps_the_first(tmp_path):
    """Builders of one cache are serialised by its lock; one that finds the cache complete when it commits
    (built meanwhile, e.g. where locks do not work) discards its copy."""
    from latentbridge.data.cache import CacheBuild

    manifest = {"format": "latentbridge-cache", "version": 1, "fingerprint": "f" * 64, "latent_dtype": "int8",
                "fields": [], "source_names": ["dialogue"], "latent_dim": 4}
    final = tmp_path / ("f" * 16)
    for n in range(2):
        with CacheBuild(final, manifest) as build:
            w = build.split_writer("dialogue", "train")
            w.write(b'{"id": "%d"}\n' % n, "dialogue")
            build.close_split(w, {})
            assert build.commit() == final
    assert (final / "dialogue/train.jsonl").read_bytes() == b'{"id": "0"}\n'
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock-")) == [final.name]


# --- caches written before issue 10 (blake2b digests; tests/golden/legacy_03780ed) ------------


def test_new_manifests_record_xxh3_128(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    manifest = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.manifest
    entries = [e for split in manifest["splits"].values() for e in split["files"].values()]
    assert entries and all(set(e) == {"bytes", "xxh3_128"} for e in entries)


def test_cache_written_before_issue_10_still_verifies(legacy_files):
    folder = legacy_files / "cache" / ("e" * 16)
    cache = open_cache(folder, expected_fingerprint="e" * 64, full_check=True)
    split = cache.split("dialogue", "train")
    assert [split[i]["id"] for i in range(len(split))] == ["ex0", "ex1", "ex2"]
    assert split[2]["target_ids"].tolist() == [5, 6, 2]
    path = folder / "dialogue/train.jsonl"
    data = bytearray(path.read_bytes())
    data[-5] ^= 1  # same size, other content
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="train.jsonl.*checksum mismatch"):
        open_cache(folder, full_check=True)


def test_cache_built_before_issue_10_is_reused_for_the_same_files(tmp_path, legacy_files, small_corpus_dir,
                                                                  tokenizer, fake_encoder):
    from latentbridge.files import hash_path

    old = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder,  # as 03780ed fingerprinted the backbone
                 parts={"encoder_files": "f83f62375060447000759d63457080a2"}).cache

    def boom():
        raise AssertionError("must not load data or models when the cache is reused")

    again = build_cache(tmp_path, {"encoder_files": hash_path(legacy_files / "backbone")}, boom, boom, small_cache_spec(),
                        log=lambda m: None)
    assert again.reused and again.cache.folder == old.folder
    weights = legacy_files / "backbone" / "sub" / "weights.bin"
    weights.write_bytes(weights.read_bytes()[::-1])
    changed = _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
                     parts={"encoder_files": hash_path(legacy_files / "backbone")})
    assert not changed.reused and changed.cache.folder != old.folder


@pytest.mark.parametrize("int8", [True, False])
def test_every_reader_gives_the_same_batch(tmp_path, small_corpus_dir, tokenizer, fake_encoder, int8):
    """jsonl records + Collate, npy batches with and without metadata (the Trainer's), and npy records."""
    import torch

    splits = {fmt: _build(tmp_path, small_corpus_dir, tokenizer, fake_encoder,
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
