"""File safety: atomic writes and folder publishing survive failures; integrity digests are xxh3_128 (hashed while
written, too), content digests sha256, and digests recorded with sha256 or blake2b still verify."""

from __future__ import annotations

import copy
import errno
import hashlib
import os
import pickle

import pytest
import xxhash

from latentbridge import files
from latentbridge.files import (PathDigest, StreamDigest, digest_matches, file_digest, file_entry, fsync_dir, hash_path,
                                publish_dir, same_content, with_legacy_digests, write_text_atomic)

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2, appendix B.1
LEGACY_BACKBONE_DIGEST = "f83f62375060447000759d63457080a2"  # what 03780ed's hash_path gave golden/.../backbone


# --- atomic writes ---------------------------------------------------------------------------


def test_write_text_atomic_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    write_text_atomic(path, "first\n")
    write_text_atomic(path, "second, longer\n")
    assert path.read_text() == "second, longer\n"
    assert os.listdir(path.parent) == ["summary.json"]


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_text_atomic(path, "previous\n")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)  # after the new bytes went to the temp file
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic(path, "new content that never lands\n")
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["summary.json"]  # no temp file left behind


# --- publishing folders ----------------------------------------------------------------------


def _folder(path, text):
    path.mkdir()
    (path / "data.txt").write_text(text)
    return path


def test_publish_dir_replaces_a_folder_and_removes_the_old_one(tmp_path):
    final, aside = tmp_path / "cache", tmp_path / ".cache.old"
    publish_dir(_folder(tmp_path / "a.partial", "a"), final, aside)
    publish_dir(_folder(tmp_path / "b.partial", "b"), final, aside)
    assert (final / "data.txt").read_text() == "b"
    assert os.listdir(tmp_path) == ["cache"]


def test_failed_publish_puts_the_old_folder_back(tmp_path, monkeypatch):
    final, aside = _folder(tmp_path / "cache", "old"), tmp_path / ".cache.old"
    staged = _folder(tmp_path / "cache.partial", "new")
    real_rename = os.rename

    def rename(src, dst):
        if src == staged:
            raise OSError(errno.EIO, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output"):
        publish_dir(staged, final, aside)
    assert (final / "data.txt").read_text() == "old" and not aside.exists()


def test_fsync_dir_tolerates_file_systems_that_cannot_but_not_io_errors(tmp_path, monkeypatch):
    def failing(code):
        def fsync(fd):
            raise OSError(code, os.strerror(code))
        return fsync

    monkeypatch.setattr(files.os, "fsync", failing(errno.EINVAL))
    fsync_dir(tmp_path)
    monkeypatch.setattr(files.os, "fsync", failing(errno.EIO))
    with pytest.raises(OSError):
        fsync_dir(tmp_path)


# --- digests ---------------------------------------------------------------------------------


def test_file_digest_of_known_content(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert file_digest(path, "sha256") == SHA256_ABC
    assert file_entry(path) == {"bytes": 3, "xxh3_128": xxhash.xxh3_128_hexdigest(b"abc")}


def test_file_digest_reads_files_larger_than_its_buffer(tmp_path):
    data = os.urandom(files._CHUNK * 2 + 12345)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert file_digest(path) == xxhash.xxh3_128_hexdigest(data)
    assert file_digest(path, "sha256") == hashlib.sha256(data).hexdigest()


def test_stream_digest_equals_the_digest_of_the_file_written(tmp_path):
    pieces = [b"header", os.urandom(3000), memoryview(os.urandom(5000))[100:]]
    digest = StreamDigest()
    with open(tmp_path / "f", "wb") as f:
        for piece in pieces:
            f.write(piece)
            digest.update(piece)
    assert digest.entry() == file_entry(tmp_path / "f")


def test_digest_matches_reads_the_hash_the_entry_names(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    legacy = {"bytes": 3, "blake2b": hashlib.blake2b(b"abc", digest_size=16).hexdigest()}
    sha = {"bytes": 3, "sha256": SHA256_ABC}
    assert digest_matches(path, legacy) and digest_matches(path, sha) and digest_matches(path, file_entry(path))
    entry = file_entry(path)
    path.write_bytes(b"abd")
    assert not any(digest_matches(path, e) for e in (legacy, sha, entry))
    assert not digest_matches(path, {"bytes": 3})  # nothing recorded: nothing proven


def test_hash_path_covers_names_and_content(tmp_path):
    root = _folder(tmp_path / "model", "weights")
    (root / "tokenizer.json").write_text("{}")
    before = hash_path(root)
    assert len(before) == 64 and hash_path(root, ["tokenizer.json"]) != before
    (root / "data.txt").rename(root / "other.txt")
    assert hash_path(root) != before  # same bytes, another name
    assert hash_path(tmp_path / "missing") is None


def test_hash_path_rehash_gives_the_digest_recorded_before_issue_10(legacy_files):
    digest = hash_path(legacy_files / "backbone")
    assert digest.rehash("blake2b") == LEGACY_BACKBONE_DIGEST
    assert same_content(LEGACY_BACKBONE_DIGEST, digest) and same_content(str(digest), digest)
    assert not same_content(LEGACY_BACKBONE_DIGEST, str(digest))  # a plain string cannot be rehashed


def test_path_digest_survives_copy_and_pickle(legacy_files):
    digest = hash_path(legacy_files / "backbone", ["config.json"])
    for clone in (copy.deepcopy(digest), pickle.loads(pickle.dumps(digest))):
        assert clone == digest and isinstance(clone, PathDigest)
        assert clone.rehash("sha256") == digest


def test_with_legacy_digests_swaps_every_path_digest(legacy_files):
    digest = hash_path(legacy_files / "backbone")
    parts = {"encoder_files": digest, "data_files": {"dataset": [["train.jsonl", digest]]}, "seed": 0}
    assert with_legacy_digests(parts) == {"encoder_files": LEGACY_BACKBONE_DIGEST, "seed": 0,
                                          "data_files": {"dataset": [["train.jsonl", LEGACY_BACKBONE_DIGEST]]}}
    assert with_legacy_digests({"encoder_files": str(digest)}) is None
