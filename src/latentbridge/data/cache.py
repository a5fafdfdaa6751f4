"""The preprocessed latent cache: record codec, atomic builds, manifest, corruption checks, random access.

Layout (one folder per fingerprint, so caches of different settings live side by side):

    <cache root>/<fingerprint[:16]>/
        manifest.json                    written last; its presence means "complete"
        <collection>/<split>.jsonl       one JSON record per line
        <collection>/<split>.offsets.npy uint64 byte offsets, n + 1 entries (cache_write_offsets_index)
        <collection>/<split>.sources.npy uint8 source code per record (caps per source without a scan)

A record: {"id", "source", "input_latents", "target_latents"[, "input_scales", "target_scales"],
"target_ids", "target_attention_mask", "text", "target_text", "input_ids", "attention_mask"} where latents
are base64 of (K, D) int8 (with float32 per-vector scales) or float32. Token lists are unpadded.

A build writes into `<root>/.tmp-<fp>-<host>-<pid>` and renames it into place after the manifest is
written, so a killed build never looks complete and an existing cache is never touched by one. A builder
holds the lock `<root>/.lock-<fp[:16]>` (latentbridge.locks) until it has published its folder: a second
builder of the same cache stops with an error naming the first, and the leftovers of builds whose lock is
free (`.tmp-*`, `.trash-*` of a killed build) are swept by the next start (`clean_stale_builds`). Should
two builders still meet (a file system without locks), the first rename wins and the later one discards
its copy (unless it was asked to replace the cache).

Reading: `open_cache(..., full_check=True)` (what a reused cache gets) checks every file's size and
digest against the manifest; xxh3_128 keeps that cheap next to training (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib.metadata as md
import json
import os
import re
import shutil
import socket
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from latentbridge.errors import UserError
from latentbridge.files import (FILE_HASH, digest_matches, file_entry, fsync_file, header_digest, json_digest, loads_unique,
                                publish_dir, recorded_hash)
from latentbridge.files import hash_path  # noqa: F401  (fingerprint builders import it from here)
from latentbridge.locks import RunLock, is_locked

CACHE_FORMAT = "latentbridge-cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"
OPTIONAL_FIELDS = ("text", "input_ids", "attention_mask", "target_ids", "target_attention_mask")
# the private mask key kept beside each token column while building a batch
_MASK_OF = {"target_ids": "_target_len", "target_attention_mask": "_target_len",
            "input_ids": "_input_len", "attention_mask": "_input_len"}


# --- quantisation ----------------------------------------------------------------------------


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., D) float -> (int8 values, float32 per-vector scales); x ~= q * scale[..., None]."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.abs(x).max(axis=-1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale[..., None].astype(np.float32)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unb64(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s, validate=True), dtype=dtype)


# --- fingerprint -----------------------------------------------------------------------------


def fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that changes the cache's content."""
    return json_digest(parts)


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "torch", "transformers", "tokenizers", "datasets"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


# --- records ---------------------------------------------------------------------------------


def encode_record(example_id: str, source: str, input_latents: np.ndarray, target_latents: np.ndarray,
                  int8: bool, extra: Mapping[str, Any]) -> bytes:
    """One JSON line for a record; latents are (K, D) float arrays."""
    rec: dict[str, Any] = {"id": example_id, "source": source}
    for name, lat in (("input", input_latents), ("target", target_latents)):
        if int8:
            q, s = quantize_int8(lat)
            rec[f"{name}_latents"], rec[f"{name}_scales"] = _b64(q), _b64(s)
        else:
            rec[f"{name}_latents"] = _b64(np.asarray(lat, dtype=np.float32))
    rec.update(extra)
    return (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def decode_record(line: bytes, latent_dim: int, int8: bool) -> dict[str, Any]:
    """A stored line -> dict with float32 (K, D) latents and int64 token arrays."""
    rec = json.loads(line)
    for name in ("input", "target"):
        if f"{name}_latents" not in rec:  # npy format: latents live in array columns
            continue
        if int8:
            q = _unb64(rec[f"{name}_latents"], np.int8).reshape(-1, latent_dim)
            s = _unb64(rec.pop(f"{name}_scales"), np.float32)
            if len(s) != len(q):
                raise ValueError("scale count does not match latent count")
            rec[f"{name}_latents"] = dequantize_int8(q, s)
        else:
            rec[f"{name}_latents"] = _unb64(rec[f"{name}_latents"], np.float32).reshape(-1, latent_dim).copy()
    for key in ("target_ids", "target_attention_mask", "input_ids", "attention_mask"):
        if key in rec:
            rec[key] = np.asarray(rec[key], dtype=np.int64)
    return rec


# --- writing ---------------------------------------------------------------------------------


class NpyAppender:
    """A `.npy` file written row block by row block, for arrays whose length is known only at the end.

    The header is reserved up front at a fixed size and rewritten with the final shape on `close()`, so rows
    go straight to the file: nothing of the array is held in memory (a memmap of the whole array would keep
    every written page resident) and no second copy is made.
    """

    HEADER_BYTES = 128  # magic, version, length and a padded header dict: room for any (rows, width, dim) shape

    def __init__(self, path: Path, dtype: Any, inner: tuple[int, ...]):
        self.path, self.dtype, self.inner = Path(path), np.dtype(dtype), tuple(inner)
        self.rows = 0
        self._f = open(self.path, "wb")
        self._f.write(self._header())

    def _header(self) -> bytes:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
             "shape": (self.rows, *self.inner)}
        body = repr(d).encode("latin1")
        room = self.HEADER_BYTES - 10  # after b"\x93NUMPY", two version bytes and the uint16 length
        if len(body) + 1 > room:
            raise ValueError(f"npy header for shape {d['shape']} does not fit {self.HEADER_BYTES} bytes")
        return np.lib.format.magic(1, 0) + struct.pack("<H", room) + body.ljust(room - 1) + b"\n"

    def append(self, block: np.ndarray) -> None:
        if block.shape[1:] != self.inner:
            raise ValueError(f"{self.path.name}: rows of shape {block.shape[1:]}, the column holds {self.inner}")
        self._f.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self._f.seek(0)
        self._f.write(self._header())
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


class SplitWriter:
    """Appends records of one split: the jsonl file, its byte offsets and its source codes, and in the `npy`
    format also fixed-width array columns (padded rows + a lengths table), set up by `allocate` and appended
    a block of rows at a time by `write_columns`. Nothing grows in memory but 9 bytes a record (offset, source)."""

    def __init__(self, folder: Path, collection: str, split: str, write_offsets: bool, source_names: list[str]):
        self.rel = f"{collection}/{split}"
        (folder / collection).mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.rel}.jsonl"
        self.folder, self.write_offsets = folder, write_offsets
        self._f = open(self.path, "wb")
        self.offsets = array("Q", [0])
        self.codes = bytearray()  # the source of each record, as its index in `source_names`
        self._code = {name: i for i, name in enumerate(source_names)}
        self.columns: dict[str, NpyAppender] = {}
        self.layout: dict[str, Any] = {}

    @property
    def count(self) -> int:
        return len(self.codes)

    def write(self, line: bytes, source: str) -> None:
        self._f.write(line)
        self.offsets.append(self.offsets[-1] + len(line))
        self.codes.append(self._code[source])

    def allocate(self, layout: Mapping[str, tuple[int, tuple[int, ...], str, int]]) -> None:
        """Array columns: name -> (width, inner shape, dtype, pad value), plus the lengths table."""
        self.layout = {k: [int(w), [int(x) for x in inner], str(dt), pad] for k, (w, inner, dt, pad) in layout.items()}
        for name, (width, inner, dtype, _) in self.layout.items():
            self.columns[name] = NpyAppender(self.folder / f"{self.rel}.{name}.npy", dtype, (width, *inner))
        self.columns["lengths"] = NpyAppender(self.folder / f"{self.rel}.lengths.npy", np.int32, (len(self.layout),))

    def write_columns(self, arrays: Mapping[str, np.ndarray], lengths: np.ndarray) -> None:
        """Append rows: `arrays[name]` (rows, width, *inner) padded as the layout says, `lengths` (rows, columns)."""
        for name in self.layout:
            self.columns[name].append(arrays[name])
        self.columns["lengths"].append(np.asarray(lengths, dtype=np.int32))

    def close(self, source_names: list[str]) -> dict[str, Any]:
        """Flush everything to disk; return this split's manifest entry."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        files = {f"{self.rel}.jsonl": self.path}
        for name, column in self.columns.items():
            column.close()
            files[f"{self.rel}.{name}.npy"] = column.path
            if column.rows != self.count:
                raise ValueError(f"{column.path.name}: {column.rows} rows written for {self.count} records")
        arrays = {"sources": np.frombuffer(bytes(self.codes), dtype=np.uint8)}
        if self.write_offsets or self.columns:  # array columns always come with the index
            arrays["offsets"] = np.frombuffer(self.offsets, dtype=np.uint64)
        for name, arr in arrays.items():
            p = self.folder / f"{self.rel}.{name}.npy"
            with open(p, "wb") as f:
                np.save(f, arr)
            files[f"{self.rel}.{name}.npy"] = p
        for name in arrays:
            fsync_file(files[f"{self.rel}.{name}.npy"])
        entry: dict[str, Any] = {"count": self.count, "files": {rel: file_entry(p) for rel, p in files.items()}}
        if self.layout:  # a list: the order is the order of the lengths table (the manifest sorts keys)
            entry["columns"] = [[name, *spec] for name, spec in self.layout.items()]
        return entry

    def source_counts(self, source_names: list[str]) -> dict[str, int]:
        counts = np.bincount(np.frombuffer(bytes(self.codes), dtype=np.uint8), minlength=len(source_names))
        return {name: int(counts[i]) for i, name in enumerate(source_names) if counts[i]}


class CacheBuild:
    """A cache being built in a temporary folder; `commit()` writes the manifest and renames it into place.

    with CacheBuild(final_dir, manifest_base) as build:
        w = build.split_writer("dialogue", "train"); w.write(line, source); ...
        build.close_split(w, skipped={...})
        build.commit()
    Leaving the block without commit() (an error) removes the temporary folder.
    """

    def __init__(self, final_dir: Path, manifest: Mapping[str, Any], write_offsets: bool = True):
        self.final_dir = Path(final_dir)
        self.lock = build_lock(self.final_dir).acquire(wait_s=_SWEEP_WAIT_S)  # held until published or given up
        clean_stale_builds(self.final_dir.parent, holding=self.final_dir.name)
        self.tmp = self.final_dir.parent / f".tmp-{self.final_dir.name}-{_HOST}-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        self.manifest = dict(manifest)
        self.manifest["splits"] = {}
        self.write_offsets = write_offsets
        self.committed = False

    def __enter__(self) -> "CacheBuild":
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.lock.release()

    def split_writer(self, collection: str, split: str) -> SplitWriter:
        return SplitWriter(self.tmp, collection, split, self.write_offsets, self.manifest["source_names"])

    def close_split(self, writer: SplitWriter, skipped: Mapping[str, int], **report: Any) -> None:
        """Record the split in the manifest: its files, what was skipped, records per source, and `report`
        (what reading and encoding it found: where rows were skipped, truncation, mix weights)."""
        entry = writer.close(self.manifest["source_names"])
        entry["skipped"] = dict(skipped)
        entry["sources"] = writer.source_counts(self.manifest["source_names"])
        entry.update(report)
        self.manifest["splits"][writer.rel] = entry

    def record_extra_files(self) -> None:
        """Files added at the top of the folder (besides the manifest) are recorded for the size check."""
        self.manifest["extra_files"] = {p.name: file_entry(p)
                                        for p in sorted(self.tmp.iterdir()) if p.is_file() and p.name != MANIFEST}

    def commit(self, replace: bool = False) -> Path:
        """Write the manifest, then rename into place. An existing complete cache there is kept (another
        builder won the race) unless `replace` (a rebuild on purpose, or of a damaged cache)."""
        self.manifest["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.manifest[FILE_HASH] = header_digest(self.manifest)  # what a reader trusts in it is covered too
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(self.manifest, f, indent=1, sort_keys=True)
        fsync_file(self.tmp / MANIFEST)
        if not replace and (self.final_dir / MANIFEST).exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:  # a trash folder left by a crash is swept by clean_stale_builds
            trash = self.final_dir.parent / f".trash-{self.final_dir.name}-{_HOST}-{os.getpid()}"
            publish_dir(self.tmp, self.final_dir, aside=trash)
        self.committed = True
        return self.final_dir


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


_SWEEP_WAIT_S = 5.0  # a start sweeping leftovers holds a build lock for milliseconds: a builder waits that out


def build_lock(final_dir: Path) -> RunLock:
    """The lock a builder of the cache folder `final_dir` holds until it has published it."""
    return RunLock(final_dir.parent / f".lock-{final_dir.name}", f"the cache {final_dir} (preprocess_cache_dir)")


def _leftover_of(entry: Path) -> Optional[str]:
    """The cache folder name a `.tmp-<name>-<host>-<pid>` / `.trash-...` folder was a build of, else None."""
    for prefix in (".tmp-", ".trash-"):
        if entry.name.startswith(prefix) and entry.is_dir():
            parts = entry.name[len(prefix):].rsplit("-", 2)
            return parts[0] if len(parts) == 3 else None
    return None


def clean_stale_builds(root: Path, holding: Optional[str] = None) -> None:
    """Remove what builds left behind (temporary and trash folders) unless their cache is being built now;
    `holding` names the cache whose build lock the caller holds (its leftovers are a dead build's too).

    A builder holds its cache's lock from start to publish, and the kernel frees the lock when the
    builder dies (even by SIGKILL), so a leftover whose lock is free belongs to no live build."""
    if not root.exists():
        return
    for entry in sorted(root.iterdir()):
        name = _leftover_of(entry)
        if name is not None and (name == holding or not is_locked(build_lock(root / name).path)):
            shutil.rmtree(entry, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------


def cache_dir_for(root: os.PathLike | str, fp: str) -> Path:
    return Path(root) / fp[:16]


def _corrupt(path: Path, why: str) -> UserError:
    folder = next((p for p in path.parents if (p / MANIFEST).exists()), path.parent)
    return UserError(f"Cache file {path} is corrupted or truncated ({why}). Delete the folder {folder} and "
                     "preprocess again (`--mode preprocess --no-skip-preprocessing-if-cached`).")


def _check_manifest_layout(path: Path, manifest: Any) -> None:
    """The fields a reader relies on are there with their types (the digest only covers manifests since issue 14)."""
    def files_ok(files: Any) -> bool:
        return isinstance(files, dict) and all(isinstance(e, dict) and isinstance(e.get("bytes"), int)
                                               for e in files.values())

    splits = manifest.get("splits")
    ok = (isinstance(splits, dict) and files_ok(manifest.get("extra_files", {}))
          and all(isinstance(e, dict) and isinstance(e.get("count"), int) and files_ok(e.get("files"))
                  for e in splits.values())
          and isinstance(manifest.get("latent_dim"), int) and isinstance(manifest.get("source_names"), list)
          and isinstance(manifest.get("fields"), list) and manifest.get("latent_dtype") in ("int8", "float32"))
    if not ok:
        raise _corrupt(path, "its fields are missing or of the wrong type")


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """The manifest of a complete cache, or None when there is none (incomplete or absent)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = loads_unique(path.read_text())
    except ValueError as e:  # not JSON, not UTF-8, or a key repeated
        raise _corrupt(path, f"unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise UserError(f"{path} is not a latentbridge cache manifest.")
    if manifest.get("version") != CACHE_VERSION:
        raise UserError(f"Cache {folder} has version {manifest.get('version')}, this code reads "
                        f"{CACHE_VERSION}; preprocess again.")
    if FILE_HASH in manifest and manifest[FILE_HASH] != header_digest(manifest):
        raise _corrupt(path, f"it does not match its own {FILE_HASH}: edited or damaged")
    _check_manifest_layout(path, manifest)
    return manifest


def check_files(folder: Path, manifest: Mapping[str, Any], full: bool = False) -> None:
    """Every file of the manifest exists with its recorded size (and checksum when `full`)."""
    listed = [entry["files"] for entry in manifest["splits"].values()] + [manifest.get("extra_files", {})]
    for files in listed:
        for rel, meta in files.items():
            p = folder / rel
            if not p.exists():
                raise _corrupt(p, "file missing")
            size = p.stat().st_size
            if size != meta["bytes"]:
                raise _corrupt(p, f"{size} bytes on disk, {meta['bytes']} recorded")
            if full and not digest_matches(p, meta):  # also the sha256 / blake2b digests of older caches
                raise _corrupt(p, f"checksum mismatch: its content is not what the manifest's {recorded_hash(meta)} "
                                  "says")


def _load_index(path: Path) -> np.ndarray:
    """A small array of the cache (offsets, sources); never unpickled (np.load refuses object arrays)."""
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise _corrupt(path, f"unreadable index: {e}") from e


class CacheSplit:
    """Random access to the records of one split: `split[i]` reads one line at its byte offset."""

    def __init__(self, folder: Path, rel: str, entry: Mapping[str, Any], manifest: Mapping[str, Any]):
        self.path = folder / f"{rel}.jsonl"
        self.rel = rel
        self.count = int(entry["count"])
        self.latent_dim = int(manifest["latent_dim"])
        self.int8 = manifest["latent_dtype"] == "int8"
        self.fields = tuple(manifest["fields"])
        self.pad_token_id = int(manifest.get("pad_token_id", 0))
        self.source_names = list(manifest["source_names"])
        self.source_weights: Optional[dict[str, float]] = entry.get("weights")  # a weighted pretraining mix
        self.sources = _load_index(folder / f"{rel}.sources.npy")
        offsets_path = folder / f"{rel}.offsets.npy"
        if offsets_path.exists():
            self.offsets = _load_index(offsets_path)  # 8 bytes a record, in memory: no page faults per read
        else:  # no index written: one scan now, O(1) afterwards
            self.offsets = self._scan()
        self._check_offsets(offsets_path if offsets_path.exists() else self.path)
        if len(self.sources) != self.count:
            raise _corrupt(folder / f"{rel}.sources.npy", "wrong number of entries")
        self.layout: dict[str, Any] = {c[0]: c[1:] for c in entry.get("columns", [])}  # npy: array columns
        self.folder = folder
        self._fd: Optional[int] = None
        self._pid: Optional[int] = None
        self._columns: Optional[dict[str, np.ndarray]] = None
        if self.layout:
            self._open_columns()

    def _open_columns(self) -> dict[str, Any]:
        """The array columns as torch tensors over their memory maps, opened once per process, never pickled."""
        import torch  # only reading npy columns needs it; the recipe imports this module torch-free

        if self._columns is None:
            cols = {}
            for name in list(self.layout) + ["lengths"]:
                p = self.folder / f"{self.rel}.{name}.npy"
                try:  # copy-on-write ("c"): a writable array torch can wrap; nothing is ever written to it
                    cols[name] = torch.from_numpy(np.load(p, mmap_mode="c"))
                except (ValueError, OSError) as e:
                    raise _corrupt(p, f"unreadable array: {e}") from e
                if len(cols[name]) != self.count:
                    raise _corrupt(p, f"{len(cols[name])} rows, {self.count} records")
            self._columns = cols
        return self._columns

    @property
    def binary(self) -> bool:
        return bool(self.layout)

    def _check_offsets(self, source: Path) -> None:
        """The byte offsets start at 0, grow, and end at the jsonl's size (which open_cache checked against the
        manifest): when they do not, the index (`source`) is what is wrong, not the jsonl."""
        o = self.offsets
        if len(o) != self.count + 1:
            raise _corrupt(source, f"{len(o)} offsets for {self.count} records")
        ends_right = int(o[0]) == 0 and int(o[-1]) == self.path.stat().st_size
        if not ends_right or not (np.diff(o.astype(np.int64)) > 0).all():  # every line holds a record
            raise _corrupt(source, f"its offsets do not match the lines of {self.path.name}")

    def _scan(self) -> np.ndarray:
        offsets = [0]
        with open(self.path, "rb") as f:
            for line in f:
                offsets.append(offsets[-1] + len(line))
        return np.asarray(offsets, dtype=np.uint64)

    def __len__(self) -> int:
        return self.count

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # one descriptor per (worker) process
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read_line(self, i: int) -> bytes:
        if not 0 <= i < self.count:
            raise IndexError(i)
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return os.pread(self._file(), end - start, start)

    def __getitem__(self, i: int) -> dict[str, Any]:
        line = self.read_line(int(i))
        try:
            rec = decode_record(line, self.latent_dim, self.int8)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise _corrupt(self.path, f"record {i} does not decode: {e}") from e
        if self.layout:
            batch = self._column_batch(np.asarray([int(i)]))
            for key, value in batch.items():
                if key.endswith("_latents"):
                    rec[key] = value[0][batch[key[:-1] + "_mask"][0]].numpy()
                elif key in _MASK_OF:
                    rec[key] = value[0][: int(batch[_MASK_OF[key]][0].sum())].numpy()
        return rec

    def _column_batch(self, rows: np.ndarray) -> dict[str, Any]:
        """npy format: padded tensors for `rows` (each trimmed to the batch's longest row), int8 latents
        dequantised, with masks. Gathered with torch's index_select straight from the memory maps: 1.5x faster
        here than numpy's fancy indexing into arrays, then converting (docs/benchmarks.md)."""
        import torch  # only reading npy columns needs it; the recipe imports this module torch-free

        cols = self._open_columns()
        index = torch.from_numpy(rows)
        names = list(self.layout)
        lengths = cols["lengths"].index_select(0, index)                       # (B, C)
        out: dict[str, Any] = {}
        for side in ("input", "target"):
            c = names.index(f"{side}_latents")
            k = max(1, int(lengths[:, c].max()))
            x = cols[f"{side}_latents"].index_select(0, index)[:, :k]          # (B, k, D)
            if self.int8:
                x = x.float().mul_(cols[f"{side}_scales"].index_select(0, index)[:, :k, None])
            out[f"{side}_latents"] = x.contiguous()
            out[f"{side}_latent_mask"] = torch.arange(k)[None, :] < lengths[:, c, None]  # (B, k)
        for ids, mask_name in (("target_ids", "target_attention_mask"), ("input_ids", "attention_mask")):
            source = ids if ids in names else mask_name if mask_name in names else None
            if source is None:
                continue
            c = names.index(source)
            width = max(1, int(lengths[:, c].max()))
            mask = (torch.arange(width)[None, :] < lengths[:, c, None]).long()
            if ids in names:
                out[ids] = cols[ids].index_select(0, index)[:, :width].long()
            if mask_name in self.fields:
                out[mask_name] = mask
            out[_MASK_OF[ids]] = mask
            out[_MASK_OF[mask_name]] = mask
        return out

    def get_batch(self, rows, metadata: bool = True) -> dict[str, Any]:
        """A collated batch of `rows` straight from the array columns (npy format only).

        `metadata=False` leaves out "id" (and text), which are read from the jsonl lines: 2-3x faster."""
        import torch  # only training reads batches; the recipe imports this module torch-free

        rows = np.asarray(rows, dtype=np.int64)
        if not self.layout:
            raise TypeError("get_batch needs the npy format; use Collate over records for jsonl")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.count):
            raise IndexError(rows)
        batch = {key: value for key, value in self._column_batch(rows).items() if not key.startswith("_")}
        batch["index"] = torch.from_numpy(rows.copy())
        batch["source"] = [self.source_names[c] for c in self.sources[rows]]
        if metadata:
            wanted = ("id", "text", "target_text") if "text" in self.fields else ("id",)
            metas = [json.loads(self.read_line(int(i))) for i in rows]
            for key in wanted:
                batch[key] = [m.get(key) for m in metas]
        return batch

    def indices_of(self, source: str) -> np.ndarray:
        if source not in self.source_names:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.sources == self.source_names.index(source))

    def __getstate__(self):  # picklable for DataLoader workers: descriptors and memmaps are reopened
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = state["_columns"] = None
        return state

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


@dataclass
class Cache:
    """A complete cache folder: its manifest and its splits ("dialogue/train", "pretrain/validation", ...)."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def names(self) -> list[str]:
        return sorted(self.manifest["splits"])

    def split(self, collection: str, split: str) -> CacheSplit:
        rel = f"{collection}/{split}"
        if rel not in self.manifest["splits"]:
            raise UserError(f"Cache {self.folder} has no {rel} split (it has {', '.join(self.names())}).")
        return CacheSplit(self.folder, rel, self.manifest["splits"][rel], self.manifest)


def open_cache(folder: os.PathLike | str, expected_fingerprint: Optional[str] = None, full_check: bool = False) -> Cache:
    """Open a complete cache; UserError naming the file when it is incomplete, foreign or corrupted."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise UserError(f"No complete cache in {folder} (no {MANIFEST}); run `--mode preprocess`.")
    if expected_fingerprint is not None and manifest.get("fingerprint") != expected_fingerprint:
        raise UserError(f"Cache {folder} was built with different settings (fingerprint "
                        f"{manifest.get('fingerprint', '?')[:16]}, expected {expected_fingerprint[:16]}).")
    check_files(folder, manifest, full=full_check)
    return Cache(folder, manifest)


def find_complete_cache(root: os.PathLike | str, fp: str) -> Optional[Cache]:
    """The complete cache for fingerprint `fp` under `root`, every file's digest checked; None when absent or
    incomplete, UserError naming the file when damaged."""
    folder = cache_dir_for(root, fp)
    if not (folder / MANIFEST).exists():
        return None
    return open_cache(folder, expected_fingerprint=fp, full_check=True)
