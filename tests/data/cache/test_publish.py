"""Atomic builds: a killed or failed build never looks complete, a later builder keeps the first cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentbridge.data.cache import MANIFEST, open_cache

from tests.data.builders import build_from_corpus
from tests.factories import small_cache_spec


REPO = Path(__file__).resolve().parents[3]


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

    result = build_from_corpus(root, small_corpus_dir, tokenizer, fake_encoder, small_cache_spec(batch_size=4))
    assert not result.reused and len(result.cache.split("dialogue", "train")) == 64
    assert not list(root.glob(".tmp-*"))  # the dead build's leftovers are gone


def test_failed_build_leaves_existing_cache_intact(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    good = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache
    before = {p: p.read_bytes() for p in good.folder.rglob("*") if p.is_file()}

    def failing(ids, mask):
        raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(RuntimeError):
        build_from_corpus(tmp_path, small_corpus_dir, tokenizer, failing, reuse=False)
    assert {p: p.read_bytes() for p in good.folder.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".tmp-*"))
    open_cache(good.folder, full_check=True)


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
