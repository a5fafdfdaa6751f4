"""Reading a complete cache: random access to a split's records, batches straight from the npy columns,
and opening (or finding) a cache with its files checked against the manifest."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from latentbridge.data.batch import ID, INDEX, LATENT_SIDES, LENGTHS, SOURCE, TARGET_TEXT, TEXT, TOKEN_SIDES
from latentbridge.data.cache.manifest import MANIFEST, cache_dir_for, check_files, corrupt, read_manifest
from latentbridge.data.cache.records import decode_record
from latentbridge.errors import UserError

def _load_index(path: Path) -> np.ndarray:
    """A small array of the cache (offsets, sources); never unpickled (np.load refuses object arrays)."""
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise corrupt(path, f"unreadable index: {e}") from e


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
            raise corrupt(folder / f"{rel}.sources.npy", "wrong number of entries")
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
            for name in [*self.layout, LENGTHS]:
                p = self.folder / f"{self.rel}.{name}.npy"
                try:  # copy-on-write ("c"): a writable array torch can wrap; nothing is ever written to it
                    cols[name] = torch.from_numpy(np.load(p, mmap_mode="c"))
                except (ValueError, OSError) as e:
                    raise corrupt(p, f"unreadable array: {e}") from e
                if len(cols[name]) != self.count:
                    raise corrupt(p, f"{len(cols[name])} rows, {self.count} records")
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
            raise corrupt(source, f"{len(o)} offsets for {self.count} records")
        ends_right = int(o[0]) == 0 and int(o[-1]) == self.path.stat().st_size
        if not ends_right or not (np.diff(o.astype(np.int64)) > 0).all():  # every line holds a record
            raise corrupt(source, f"its offsets do not match the lines of {self.path.name}")

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
            raise corrupt(self.path, f"record {i} does not decode: {e}") from e
        if self.layout:
            batch = self._column_batch(np.asarray([int(i)]))
            for side in LATENT_SIDES:
                rec[side.latents] = batch[side.latents][0][batch[side.mask][0]].numpy()
            for tokens in TOKEN_SIDES:
                for key in (k for k in (tokens.ids, tokens.mask) if k in batch):
                    rec[key] = batch[key][0][: int(batch[tokens.length][0].sum())].numpy()
        return rec

    def _column_batch(self, rows: np.ndarray) -> dict[str, Any]:
        """npy format: padded tensors for `rows` (each trimmed to the batch's longest row), int8 latents
        dequantised, with masks. Gathered with torch's index_select straight from the memory maps: 1.5x faster
        here than numpy's fancy indexing into arrays, then converting (docs/benchmarks.md)."""
        import torch  # only reading npy columns needs it; the recipe imports this module torch-free

        cols = self._open_columns()
        index = torch.from_numpy(rows)
        names = list(self.layout)
        lengths = cols[LENGTHS].index_select(0, index)                         # (B, C)
        out: dict[str, Any] = {}
        for side in LATENT_SIDES:
            c = names.index(side.latents)
            k = max(1, int(lengths[:, c].max()))
            x = cols[side.latents].index_select(0, index)[:, :k]               # (B, k, D)
            if self.int8:
                x = x.float().mul_(cols[side.scales].index_select(0, index)[:, :k, None])
            out[side.latents] = x.contiguous()
            out[side.mask] = torch.arange(k)[None, :] < lengths[:, c, None]  # (B, k)
        for tokens in TOKEN_SIDES:
            ids, mask_name = tokens.ids, tokens.mask
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
            out[tokens.length] = mask  # the row lengths, for __getitem__'s unpadded records
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
        lengths = {tokens.length for tokens in TOKEN_SIDES}
        batch = {key: value for key, value in self._column_batch(rows).items() if key not in lengths}
        batch[INDEX] = torch.from_numpy(rows.copy())
        batch[SOURCE] = [self.source_names[c] for c in self.sources[rows]]
        if metadata:
            wanted = (ID, TEXT, TARGET_TEXT) if TEXT in self.fields else (ID,)
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
