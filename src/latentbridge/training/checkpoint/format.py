"""What checkpoints look like on disk: names, the manifest's JSON layout, the digests that cover every
header a loader trusts, the safetensors writer, and the JSON-plus-tensor codec.

A step checkpoint is a folder `step-<9 digits>` holding `model.safetensors`, `state.safetensors`,
`state.json`, `config.json` and `manifest.json`; nested state (optimizer, scheduler, loop, RNG) is stored
as a JSON skeleton in `state.json` whose tensors sit in `state.safetensors` under their path, so loading
never runs pickle. The manifest lists each file's size and xxh3_128 and, from format version 2, carries
the digest of its own other fields (`SELF_DIGEST`). A model file's header carries the digest of its other
header fields and its tensors under the same key. Version 1 (sha256 entries, no self digest; a model
file's `tensors_sha256` covered its tensors only) is refused by the loaders and read only by convert.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from latentbridge.files import FILE_HASH, StreamDigest, bytes_digest, header_digest

CHECKPOINT_FORMAT = "latentbridge-checkpoint"
MODEL_FILE_FORMAT = "latentbridge-model"
FORMAT_VERSION = 2
SELF_DIGEST = FILE_HASH  # the key, in a manifest or a model file's header, of the digest covering the rest
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_STEP_DIR = re.compile(r"^step-(\d+)$")

CopyTensor = Callable[[str, torch.Tensor], torch.Tensor]


# --- layout ----------------------------------------------------------------------------------


def step_dir_name(step: int) -> str:
    return f"step-{step:09d}"


def committed_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every committed step checkpoint in `directory`, oldest first.

    Committed = final name (no `.partial`) and a manifest present. Content is verified on load. A step folder that
    is a symbolic link is not this run's own: it is never resumed from, nor pruned.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        m = _STEP_DIR.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and (entry / MANIFEST_NAME).is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def find_latest(directory: str | Path) -> Path | None:
    """The newest committed step checkpoint in `directory` (for `--resume auto`), or None."""
    found = committed_checkpoints(directory)
    return found[-1][1] if found else None


def write_json(path: Path, obj: Any, fsync: bool = True) -> dict[str, Any]:
    """Write a JSON file of a checkpoint (indented, sorted keys), fsync it unless told not to (the caller then
    does), return its manifest entry."""
    data = json.dumps(obj, indent=1, sort_keys=True).encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return {"bytes": len(data), FILE_HASH: bytes_digest(data)}


# --- digests over headers --------------------------------------------------------------------


def model_file_digest(metadata: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> str:
    """A model file's digest: its header fields (but SELF_DIGEST) and its tensors' names, dtypes, shapes, bytes."""
    h = StreamDigest()
    h.update(header_digest(metadata).encode())
    _update_with_tensors(h, tensors)
    return h.hexdigest()


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: what a version-1 model file's `tensors_sha256` holds."""
    h = hashlib.sha256()  # the header key says sha256: this is part of the old format, not a choice of files.py
    _update_with_tensors(h, tensors)
    return h.hexdigest()


def _update_with_tensors(h: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(raw_bytes(t))


# --- safetensors -----------------------------------------------------------------------------

# safetensors' dtype names, in the order of its Rust enum: its writer lays tensors out by this order
# (descending) then by name, which keeps every tensor aligned to its element size.
_SAFETENSORS_DTYPES = {
    dtype: name for dtype, name in (
        (torch.bool, "BOOL"), (torch.uint8, "U8"), (torch.int8, "I8"), (torch.float8_e5m2, "F8_E5M2"),
        (torch.float8_e4m3fn, "F8_E4M3"), (torch.int16, "I16"), (torch.uint16, "U16"), (torch.float16, "F16"),
        (torch.bfloat16, "BF16"), (torch.int32, "I32"), (torch.uint32, "U32"), (torch.float32, "F32"),
        (torch.complex64, "C64"), (torch.float64, "F64"), (torch.int64, "I64"), (torch.uint64, "U64"))
}
_DTYPE_RANK = {dtype: rank for rank, dtype in enumerate(_SAFETENSORS_DTYPES)}
_WRITE_CHUNK = 1 << 20  # written then hashed while still in the CPU's cache


def raw_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, without a copy."""
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def safetensors_header(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[bytes, list[str]]:
    """(the header bytes safetensors' own writer makes for these tensors, the names in file order)."""
    unknown = sorted({str(t.dtype) for t in tensors.values() if t.dtype not in _DTYPE_RANK})
    if unknown:
        raise TypeError(f"cannot store tensors of dtype {', '.join(unknown)} in a checkpoint")
    order = sorted(tensors, key=lambda name: (-_DTYPE_RANK[tensors[name].dtype], name))
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return text, order


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                      fsync: bool = True) -> dict[str, Any]:
    """Write contiguous CPU tensors as a safetensors file, fsync it unless told not to (the caller then does),
    return its manifest entry.

    Hand-written (the format is an 8-byte length, a JSON header, the raw bytes) rather than safetensors'
    `save_file`, which first turns every tensor into a Python bytes copy and leaves the file to be read
    back for its digest: here each tensor's memory goes straight to the file and into the digest. The
    bytes equal `save_file`'s (tested); files are read with the safetensors library.
    """
    header, order = safetensors_header(tensors, metadata)
    digest = StreamDigest()
    with open(path, "wb") as f:
        for piece in (len(header).to_bytes(8, "little"), header):
            f.write(piece)
            digest.update(piece)
        for name in order:
            if tensors[name].numel():
                _write_hashed(f, raw_bytes(tensors[name]), digest)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return digest.entry()


def _write_hashed(f: Any, data: memoryview, digest: StreamDigest) -> None:
    for start in range(0, len(data), _WRITE_CHUNK):
        piece = data[start:start + _WRITE_CHUNK]
        f.write(piece)
        digest.update(piece)


# --- the JSON-plus-tensor codec --------------------------------------------------------------


def encode_state(obj: Any, path: str, tensors: dict[str, torch.Tensor], copy: CopyTensor) -> Any:
    """JSON skeleton of a nested state dict; each tensor goes, through `copy(key, tensor)`, to `tensors[key]`."""
    if isinstance(obj, torch.Tensor):
        key = path
        while key in tensors:
            key += "_"
        tensors[key] = copy(key, obj)
        return {"__tensor__": key}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.generic):
        return encode_state(obj.item(), path, tensors, copy)
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, f"{path}/{i}", tensors, copy) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, f"{path}/{i}", tensors, copy) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, f"{path}/{k}", tensors, copy) for k, v in obj.items()}
        return {"__dict__": [[encode_state(k, path, tensors, copy), encode_state(v, f"{path}/{k}", tensors, copy)]
                             for k, v in obj.items()]}
    raise TypeError(f"cannot store {type(obj).__name__} at {path!r} in a checkpoint (only tensors and JSON values, no pickle)")


def decode_state(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of encode_state, given the stored tensors."""
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj["__dict__"]}
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: decode_state(v, tensors) for k, v in obj.items()}
    return obj
