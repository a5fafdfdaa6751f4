"""Copying the training state off the device, and writing step checkpoints and model files crash-safely.

Every file is written under a `.partial` name, fsynced, and published by rename; a step checkpoint's
manifest is written last, and older checkpoints are pruned only after the new one is in place.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

from latentbridge.files import file_entry, fsync_file, publish_dir, publish_file
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT,
                                                     PARTIAL_SUFFIX, committed_checkpoints, encode_state, step_dir_name,
                                                     tensor_digest, write_json)
from latentbridge.training.checkpoint.state import TrainState

# --- copying the state -----------------------------------------------------------------------


class CopyBuffers:
    """CPU copies reused across saves, so a save costs a memcpy instead of fresh allocations."""

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self._pool: dict[str, torch.Tensor] = {}
        self.cuda_used = False

    def copy(self, key: str, t: torch.Tensor) -> torch.Tensor:
        """A CPU copy of `t` (pinned, and asynchronous, when `t` is on a GPU: `finish()` waits for it)."""
        t = t.detach()
        pinned = t.is_cuda
        buf = self._pool.get(key) if self.reuse else None
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype or buf.is_pinned() != pinned:
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=pinned)
            if self.reuse:
                self._pool[key] = buf
        buf.copy_(t, non_blocking=pinned)
        self.cuda_used |= pinned
        return buf

    def finish(self) -> None:
        if self.cuda_used:
            torch.cuda.synchronize()
            self.cuda_used = False


def copy_tensors(tensors: Mapping[str, torch.Tensor], prefix: str,
                 buffers: CopyBuffers) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Copy a flat tensor dict; tensors sharing memory (tied weights) are stored once, others alias."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"model state entry {name!r} is {type(t).__name__}, not a tensor")
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() > 0 and ident in seen:
            aliases[name] = seen[ident]
            continue
        seen[ident] = name
        out[name] = buffers.copy(prefix + name, t)
    return out, aliases


def json_copy(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as stored: JSON values only (others by str()), detached from the caller's objects."""
    return json.loads(json.dumps(dict(config), default=str))


@dataclass
class Snapshot:
    """A step checkpoint's content, copied off the live training state."""

    step: int
    stage: str
    model: dict[str, torch.Tensor]
    model_aliases: dict[str, str]
    state_tensors: dict[str, torch.Tensor]
    state_json: dict[str, Any]
    config: dict[str, Any]


def snapshot(step: int, state: TrainState, buffers: CopyBuffers) -> Snapshot:
    model, aliases = copy_tensors(state.model, "model/", buffers)
    tensors: dict[str, torch.Tensor] = {}
    state_json = {
        name: encode_state(value, name, tensors, buffers.copy)
        for name, value in (("optimizer", state.optimizer), ("scheduler", state.scheduler),
                            ("loop", dict(state.loop)), ("rng", state.rng))
    }
    buffers.finish()
    return Snapshot(step, state.stage, model, aliases, tensors, state_json, json_copy(state.config))


# --- writing ---------------------------------------------------------------------------------


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    save_file(tensors, path, metadata={"format": CHECKPOINT_FORMAT})
    fsync_file(path)
    return file_entry(path)


def write_step_checkpoint(snap: Snapshot, directory: Path, fingerprint: ConfigFingerprint, keep_last: int | None) -> Path:
    """Write `step-<step>/` (manifest last), publish it, then prune to the newest `keep_last`."""
    final = directory / step_dir_name(snap.step)
    partial = directory / (final.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    files = {
        "model.safetensors": _save_tensors(snap.model, partial / "model.safetensors"),
        "state.safetensors": _save_tensors(snap.state_tensors, partial / "state.safetensors"),
        "state.json": write_json(partial / "state.json", {"model_aliases": snap.model_aliases, **snap.state_json}),
        "config.json": write_json(partial / "config.json", snap.config),
    }
    manifest = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "step",
        "step": snap.step,
        "stage": snap.stage,
        "fingerprint": fingerprint.digest,
        "fingerprint_fields": dict(fingerprint.fields),
        "created_unix": time.time(),
        "files": files,
    }
    write_json(partial / MANIFEST_NAME, manifest)  # last: its presence means "complete"
    publish_dir(partial, final, aside=final.with_name(final.name + ".replaced"))
    prune(directory, keep_last, protect=final)
    return final


def prune(directory: Path, keep_last: int | None, protect: Path) -> None:
    """Delete all but the newest `keep_last` committed checkpoints (never `protect`, the one just written)."""
    if not keep_last:
        return
    committed = committed_checkpoints(directory)
    for _, path in committed[: max(0, len(committed) - keep_last)]:
        if path != protect:
            shutil.rmtree(path, ignore_errors=True)


def write_model_tensors(path: Path, model: Mapping[str, torch.Tensor], aliases: Mapping[str, str],
                        config: Mapping[str, Any], fingerprint: ConfigFingerprint, step: int, stage: str) -> Path:
    """Write copied tensors as one model file, its header holding config, step, stage, fingerprint and digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    metadata = {
        "format": MODEL_FILE_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "step": str(step),
        "stage": stage,
        "fingerprint": fingerprint.digest,
        "fingerprint_fields": json.dumps(dict(fingerprint.fields), default=str),
        "config": json.dumps(dict(config), default=str),
        "aliases": json.dumps(dict(aliases)),
        "tensors_sha256": tensor_digest(model),
    }
    save_file(dict(model), partial, metadata=metadata)
    publish_file(partial, path)
    return path


def write_model_file(path: str | Path, model: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
                     fingerprint: ConfigFingerprint, step: int, stage: str) -> Path:
    """Synchronously write a model file (best / hand-off; see the package doc). Returns its path."""
    tensors, aliases = copy_tensors(model, "", CopyBuffers(reuse=False))
    return write_model_tensors(Path(path), tensors, aliases, config, fingerprint, step, stage)
