"""A build shared by several ranks (threads here; encoding/test_shards_torchrun.py runs torchrun)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from latentbridge.data.cache import MANIFEST, open_cache
from latentbridge.data.encoding import SHARDS_DIR
from latentbridge.files import FILE_HASH

from tests.data.builders import build_from_splits, corpus_splits
from tests.factories import FakeEncoder, cache_folders, make_tokenizer, small_cache_spec, thread_shards


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def _manifest(folder: Path) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.pop("created_at")
    manifest.pop(FILE_HASH)  # the manifest's own digest covers created_at
    return manifest


def _sharded(root, load_splits, spec, count=2, fail_rank=None):
    """build_cache on `count` threads as ranks; the rank `fail_rank` fails in its second encode call."""
    shards, barrier = thread_shards(count)
    results, errors = [None] * count, [None] * count

    def rank(r):
        own = make_tokenizer()  # a fast tokenizer keeps its truncation length between calls: one per thread
        enc = FakeEncoder(len(own))
        if r == fail_rank:
            calls = Counter()

            def failing(ids, mask, inner=enc):
                calls["n"] += 1
                if calls["n"] == 2:
                    raise RuntimeError("CUDA out of memory (simulated)")
                return inner(ids, mask)
            enc = failing
        try:
            results[r] = build_from_splits(root, load_splits, own, enc, spec, shards=shards[r])
        except BaseException as e:  # torchrun stops the other ranks when one dies; the barrier does here
            errors[r] = e
            barrier.abort()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


@pytest.mark.parametrize("fmt", ["jsonl", "npy"])
def test_a_sharded_build_equals_a_single_process_build(tmp_path, small_corpus_dir, tokenizer, fmt):
    spec = small_cache_spec(format=fmt, batch_size=4, chunk_size=12, store_text=True)
    single = build_from_splits(tmp_path / "one", corpus_splits(small_corpus_dir), tokenizer, FakeEncoder(len(tokenizer)), spec).cache
    results, errors = _sharded(tmp_path / "two", corpus_splits(small_corpus_dir), spec)
    assert errors == [None, None]
    assert results[0].cache.folder == results[1].cache.folder == tmp_path / "two" / single.folder.name
    sharded = results[0].cache
    assert _files(sharded.folder) == _files(single.folder)  # byte for byte: every record, in the same order
    assert _manifest(sharded.folder) == _manifest(single.folder)
    assert not (sharded.folder / SHARDS_DIR).exists()
    open_cache(sharded.folder, full_check=True)
    for name in sharded.names():
        a, b = single.split(*name.split("/")), sharded.split(*name.split("/"))
        assert [a[i]["id"] for i in range(len(a))] == [b[i]["id"] for i in range(len(b))]


def test_an_interrupted_sharded_build_never_looks_complete(tmp_path, small_corpus_dir, tokenizer):
    spec = small_cache_spec(batch_size=4, chunk_size=12)
    results, errors = _sharded(tmp_path, corpus_splits(small_corpus_dir), spec, fail_rank=1)
    assert isinstance(errors[1], RuntimeError) and errors[0] is not None and results == [None, None]
    assert not list(tmp_path.rglob(MANIFEST)) and not cache_folders(tmp_path)  # rank 0 removed the build
    again = build_from_splits(tmp_path, corpus_splits(small_corpus_dir), tokenizer, FakeEncoder(len(tokenizer)), spec)
    assert not again.reused and len(again.cache.split("dialogue", "train")) == 64


def test_ranks_reuse_a_complete_cache_together(tmp_path, small_corpus_dir, tokenizer):
    spec = small_cache_spec(batch_size=4, chunk_size=12)
    built = build_from_splits(tmp_path, corpus_splits(small_corpus_dir), tokenizer, FakeEncoder(len(tokenizer)), spec).cache

    def boom():
        raise AssertionError("must not load data when the cache is reused")

    results, errors = _sharded(tmp_path, boom, spec)
    assert errors == [None, None] and all(r.reused and r.cache.folder == built.folder for r in results)
    assert np.array_equal(results[1].cache.split("dialogue", "train").sources, built.split("dialogue", "train").sources)
