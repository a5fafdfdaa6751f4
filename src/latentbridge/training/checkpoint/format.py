"""What checkpoints look like on disk: names, the manifest's JSON layout, and the JSON-plus-tensor codec.

A step checkpoint is a folder `step-<9 digits>` holding `model.safetensors`, `state.safetensors`,
`state.json`, `config.json` and `manifest.json`; nested state (optimizer, scheduler, loop, RNG) is stored
as a JSON skeleton in `state.json` whose tensors sit in `state.safetensors` under their path, so loading
never runs pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from latentbridge.files import file_entry, fsync_file

CHECKPOINT_FORMAT = "latentbridge-checkpoint"
MODEL_FILE_FORMAT = "latentbridge-model"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_STEP_DIR = re.compile(r"^step-(\d+)$")

CopyTensor = Callable[[str, torch.Tensor], torch.Tensor]


# --- layout ----------------------------------------------------------------------------------


def step_dir_name(step: int) -> str:
    return f"step-{step:09d}"


def committed_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every committed step checkpoint in `directory`, oldest first.

    Committed = final name (no `.partial`) and a manifest present. Content is verified on load.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        m = _STEP_DIR.match(entry.name)
        if m and entry.is_dir() and (entry / MANIFEST_NAME).is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def find_latest(directory: str | Path) -> Path | None:
    """The newest committed step checkpoint in `directory` (for `--resume auto`), or None."""
    found = committed_checkpoints(directory)
    return found[-1][1] if found else None


def write_json(path: Path, obj: Any) -> dict[str, Any]:
    """Write a JSON file of a checkpoint (indented, sorted keys), fsync it, return its manifest entry."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    fsync_file(path)
    return file_entry(path)


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: a model file's header covers its tensors with it."""
    h = hashlib.sha256()  # the header key says sha256: this is part of the format, not a choice of files.py
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


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
