"""File safety for checkpoints, the cache and every file we write: fsync, publish by rename, digests.

Write a folder as `<name>.partial` (or any staging name), fsync its files, then `publish_dir` it: readers
see the old folder or the new one, never a half-written one. Whole files go through `write_text_atomic`.

Two kinds of digest, for two jobs:

- **Integrity** of the files we write (checkpoint and cache manifests, model-file headers): xxh3_128
  (`FILE_HASH`), computed while a file is written (`StreamDigest`) and checked whenever it is read back.
  It is there to catch torn, truncated, bit-flipped or edited files, not a forger: a forger could rewrite
  any unkeyed digest, sha256 included. At 7-11 GB/s against sha256's 0.7-1.3 GB/s here
  (bench/bench_digest.py, docs/benchmarks.md) it makes a full check of a cache at every start, and hashing
  a checkpoint as it is written, cheap next to the disk.
- **Identity** of content (the model and data folders in fingerprints, `hash_path`, and `json_digest`,
  which names cache folders): sha256 (`HASH_NAME`), as since issue 10, so fingerprints do not change.

Manifests record the hash's name next to each digest, so entries recorded before (sha256 since issue 10,
blake2b before it) still verify: see `digest_matches` and `PathDigest.rehash`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import xxhash

from latentbridge.errors import UserError

FILE_HASH = "xxh3_128"  # integrity of the files we write
HASH_NAME = "sha256"    # identity of content (fingerprints); also what manifests used from issue 10 to 14
LEGACY_HASH_NAME = "blake2b"  # what the cache and backbone digests used before issue 10; read, never written
_HASHES: dict[str, Callable[[], Any]] = {
    FILE_HASH: xxhash.xxh3_128,
    HASH_NAME: hashlib.sha256,
    LEGACY_HASH_NAME: lambda: hashlib.blake2b(digest_size=16),
}
_LEGACY_HEX_LENGTH = 32  # a bare hex digest tells its hash by its length: sha256 has 64 digits
_CHUNK = 1 << 20  # read into one reused buffer: fresh 4 MiB chunks cost page faults that outweighed the hash
# errno values of file systems that cannot fsync a folder: the rename is still atomic there, only its
# durability across a power cut is weaker, which is no reason to fail a save
# errno values of a write the file system refuses (full disk, quota, read-only, permission): a UserError
# naming the folder's field, not a traceback
REFUSED_WRITES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EISDIR}


# --- durability ------------------------------------------------------------------------------


def fsync_file(path: Path) -> None:
    """Flush a written file's content to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_files(paths: Iterable[Path]) -> None:
    """fsync several written files at once: the file system commits them together (five small files took
    1-4 ms so, 15-17 ms one after the other, here)."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=max(1, len(paths))) as pool:
        list(pool.map(fsync_file, paths))


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (creations, renames) to disk; a no-op where the file system cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _DIR_FSYNC_UNSUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def publish_dir(staged: Path, final: Path, aside: Path) -> None:
    """Make the complete folder `staged` appear as `final` by rename.

    A folder already at `final` is renamed to `aside` first and deleted only once `staged` is in place.
    POSIX cannot swap two folders in one rename, so for that instant `final` is absent: readers see the
    old folder, then nothing, then the new one, never a mix. A failed rename puts the old folder back;
    a crash in between leaves it at `aside`, for the caller's sweep.
    """
    fsync_dir(staged)
    if aside.exists():
        shutil.rmtree(aside)
    replaced = final.exists()
    if replaced:
        os.rename(final, aside)
    try:
        os.rename(staged, final)
    except BaseException:
        if replaced:  # put the old folder back: a failed publish must leave it as it was
            os.rename(aside, final)
        raise
    fsync_dir(final.parent)
    if replaced:
        shutil.rmtree(aside, ignore_errors=True)


def publish_file(staged: Path, final: Path) -> None:
    """Make the fully written file `staged` appear as `final` (replacing it) by one atomic rename."""
    fsync_file(staged)
    os.replace(staged, final)
    fsync_dir(final.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """`write_bytes_atomic` of `text` in UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def not_a_folder(path: Path) -> Optional[Path]:
    """The file that keeps `path` from being a folder: `path` itself or one of its parents; None if none does."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def ensure_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder `path` with its parents if missing. When it cannot be (it is a file, it lies under
    a file, the file system refuses), a UserError naming `what` (the field and its flag) and the cause."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError as error:
        blocker = not_a_folder(path)
        if blocker == path:
            cause = "it exists and is a file, not a folder"
        elif blocker is not None:
            cause = f"it lies under {blocker}, which is a file, not a folder"
        else:
            cause = f"it cannot be created ({error.strerror})"
    raise UserError(f"{what} is {path}, but {cause}. Give a folder path there (it is created when missing).")


# --- digests ---------------------------------------------------------------------------------


def _hasher(hash_name: str) -> Any:
    try:
        return _HASHES[hash_name]()
    except KeyError:
        raise ValueError(f"unknown hash {hash_name!r}; expected one of {', '.join(_HASHES)}") from None


def _update_from_file(h: Any, path: Path) -> None:
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            h.update(view[:n])


def file_digest(path: Path, hash_name: str = FILE_HASH) -> str:
    """Hex digest of a file's content."""
    h = _hasher(hash_name)
    _update_from_file(h, path)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """A manifest entry for a written file: its size and its integrity digest, keyed by the hash's name."""
    return {"bytes": Path(path).stat().st_size, FILE_HASH: file_digest(path)}


def digest_matches(path: Path, entry: Mapping[str, Any]) -> bool:
    """Whether a file still has the digest its manifest entry recorded (under whichever known hash it names)."""
    for hash_name in _HASHES:
        if hash_name in entry:
            return file_digest(path, hash_name) == entry[hash_name]
    return False


def recorded_hash(entry: Mapping[str, Any]) -> str:
    """The name of the hash a manifest entry recorded its digest with (for error messages)."""
    return next((name for name in _HASHES if name in entry), FILE_HASH)


class StreamDigest:
    """The integrity digest of bytes as they are written: `update` each piece, then `entry()`.

    Hashing what is written, while it is in the CPU's cache, spares reading a file back to hash it."""

    def __init__(self) -> None:
        self._h = _hasher(FILE_HASH)
        self.bytes = 0

    def update(self, data: Any) -> None:
        self._h.update(data)
        self.bytes += memoryview(data).nbytes

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def entry(self) -> dict[str, Any]:
        """The manifest entry of the bytes seen so far (as `file_entry` gives for the file they make)."""
        return {"bytes": self.bytes, FILE_HASH: self.hexdigest()}


def bytes_digest(data: bytes) -> str:
    """The integrity digest of `data` (FILE_HASH)."""
    return _HASHES[FILE_HASH](data).hexdigest()


def header_digest(header: Mapping[str, Any]) -> str:
    """The digest a manifest (or a file's header) records of itself, under the key FILE_HASH: the integrity
    digest of the canonical JSON of every other field."""
    return bytes_digest(canonical_json({k: v for k, v in header.items() if k != FILE_HASH}).encode())


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook for every header a loader trusts: a key given twice is refused (ValueError),
    since readers disagree on which copy wins and an edit could hide behind the first."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"the key(s) {', '.join(map(repr, repeated))} appear more than once")
    return dict(pairs)


def loads_unique(text: str | bytes) -> Any:
    """json.loads refusing repeated keys in any object (ValueError)."""
    return json.loads(text, object_pairs_hook=unique_keys)


def check_safetensors_header(path: Path) -> None:
    """ValueError when the JSON header of the safetensors file `path` repeats a key (the safetensors library
    keeps one copy silently) or is not JSON; OSError when it cannot be read."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if length > 100_000_000:  # safetensors' own limit on a header
            raise ValueError(f"its header claims {length} bytes")
        loads_unique(f.read(length))


def canonical_json(obj: Any) -> str:
    """The JSON text of `obj` that digests are taken of: sorted keys, no spaces, other types by str()."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def json_digest(obj: Any) -> str:
    """sha256 hex of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()  # pinned, not HASH_NAME: it names cache folders


class PathDigest(str):
    """The hex digest of a file or folder that remembers what it hashed.

    It is a plain string wherever it goes (JSON, fingerprints), but `rehash` can digest the same files
    again with another hash function: a fingerprint recorded before issue 10 holds blake2b digests of the
    backbone folders, and comparing it needs their blake2b digest now. Only then are they read again.
    """

    def __new__(cls, hexdigest: str, path: Path, names: Optional[tuple[str, ...]]) -> "PathDigest":
        self = super().__new__(cls, hexdigest)
        self.path, self.names = path, names
        return self

    def __reduce__(self) -> tuple:
        return PathDigest, (str(self), self.path, self.names)

    def rehash(self, hash_name: str) -> str:
        """The digest the same files have under `hash_name`."""
        return _path_digest(self.path, self.names, hash_name)


def _path_digest(path: Path, names: Optional[Iterable[str]], hash_name: str) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if names is not None and path.is_dir():
        wanted = set(names)
        files = [p for p in files if p.name in wanted]
    h = _hasher(hash_name)
    for p in files:  # the name too: a renamed file changes the digest
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode() + b"\0")
        _update_from_file(h, p)
    return h.hexdigest()


def hash_path(path: os.PathLike | str, names: Optional[Iterable[str]] = None) -> Optional[PathDigest]:
    """Content digest of a local file or folder (only the files called `names` inside it when given); None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    names = tuple(sorted(names)) if names is not None else None
    return PathDigest(_path_digest(path, names, HASH_NAME), path, names)


def same_content(recorded: Any, current: Any) -> bool:
    """`recorded == current`, where `recorded` may be a digest of the same files under the legacy hash."""
    if recorded == current:
        return True
    legacy = isinstance(recorded, str) and len(recorded) == _LEGACY_HEX_LENGTH
    return legacy and isinstance(current, PathDigest) and current.rehash(LEGACY_HASH_NAME) == recorded


def with_legacy_digests(obj: Any) -> Any:
    """`obj` (nested dicts/lists) with every PathDigest replaced by its legacy-hash digest, or None if it holds none."""
    found = False

    def swap(value: Any) -> Any:
        nonlocal found
        if isinstance(value, PathDigest):
            found = True
            return value.rehash(LEGACY_HASH_NAME)
        if isinstance(value, Mapping):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [swap(v) for v in value]
        return value

    swapped = swap(obj)
    return swapped if found else None
