"""Writing one split's files: the jsonl records, their byte offsets and source codes, and in the npy
format the fixed-width array columns and their lengths table."""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from latentbridge.data.batch import LENGTHS
from latentbridge.files import file_entry, fsync_file

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
        self.columns[LENGTHS] = NpyAppender(self.folder / f"{self.rel}.{LENGTHS}.npy", np.int32, (len(self.layout),))

    def write_columns(self, arrays: Mapping[str, np.ndarray], lengths: np.ndarray) -> None:
        """Append rows: `arrays[name]` (rows, width, *inner) padded as the layout says, `lengths` (rows, columns)."""
        for name in self.layout:
            self.columns[name].append(arrays[name])
        self.columns[LENGTHS].append(np.asarray(lengths, dtype=np.int32))

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
