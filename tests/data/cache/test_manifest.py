"""The manifest's file checks: sizes, digests (xxh3_128 now, the digests of older caches too)."""

from __future__ import annotations

import pytest

from latentbridge.data.cache import open_cache
from latentbridge.errors import UserError

from tests.data.builders import build_from_corpus


@pytest.mark.parametrize("victim", ["dialogue/train.jsonl", "dialogue/train.offsets.npy", "manifest.json"])
def test_truncated_file_is_reported_by_name(tmp_path, small_corpus_dir, tokenizer, fake_encoder, victim):
    folder = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.folder
    path = folder / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=victim.split("/")[-1]):
        open_cache(folder).split("dialogue", "train")


def test_new_manifests_record_xxh3_128(tmp_path, small_corpus_dir, tokenizer, fake_encoder):
    manifest = build_from_corpus(tmp_path, small_corpus_dir, tokenizer, fake_encoder).cache.manifest
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
