"""Copying the training state off the device, and writing step checkpoints and model files crash-safely.

Every file is written under a `.partial` name, fsynced, and published by rename; a step checkpoint's
manifest is written last, and older checkpoints are pruned only after the new one is in place.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from latentbridge.files import fsync_files, header_digest, publish_dir, publish_file
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT,
                                                     PARTIAL_SUFFIX, SELF_DIGEST, committed_checkpoints, encode_state,
                                                     model_file_digest, step_dir_name, write_json, write_safetensors)
from latentbridge.training.checkpoint.state import TrainState

# --- copying the state -----------------------------------------------------------------------


class CopyBuffers:
    """CPU copies of the state for a save, reused across saves so that a save costs a memcpy, not fresh memory.

    With `share_cpu_tensors` (a synchronous save, whose caller waits until the files are written) tensors
    already on the CPU are written from where they are: copying them would only cost time. With
    `defer_cpu_copies` their copies are left to `finish()`'s PendingCopies, which the writer thread runs
    while the loop goes on (see AsyncCheckpointer's `background_copy`). Copies from a GPU are queued on the
    current stream, into pinned buffers, and never block.
    """

    def __init__(self, reuse: bool, share_cpu_tensors: bool = False, defer_cpu_copies: bool = False) -> None:
        self.reuse = reuse
        self.share_cpu_tensors = share_cpu_tensors
        self.defer_cpu_copies = defer_cpu_copies
        self._pool: dict[str, torch.Tensor] = {}
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.cuda_used = False

    def copy(self, key: str, t: torch.Tensor) -> torch.Tensor:
        """The CPU tensor that will hold `t`'s values once `finish()`'s copies are complete."""
        t = t.detach()
        pinned = t.is_cuda
        if self.share_cpu_tensors and t.device.type == "cpu":
            return t.contiguous()
        buf = self._pool.get(key) if self.reuse else None
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype or buf.is_pinned() != pinned:
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=pinned)
            if self.reuse:
                self._pool[key] = buf
        if self.defer_cpu_copies and not pinned:
            self._pending.append((buf, t))
        else:
            buf.copy_(t, non_blocking=pinned)
            self.cuda_used |= pinned
        return buf

    def finish(self) -> "PendingCopies":
        """What is left of the copies asked for since the last call."""
        event = None
        if self.cuda_used:
            event = torch.cuda.Event()
            event.record()
        pending = PendingCopies(self._pending, event)
        self._pending, self.cuda_used = [], False
        return pending


class PendingCopies:
    """The copies a snapshot still needs: CPU tensors to copy, and the GPU copies' event to wait for.

    The GPU copies were queued on the loop's stream before any later update of the same tensors, so the
    loop never waits for them; the CPU copies must finish before the loop changes their sources (`wait`).
    """

    def __init__(self, cpu: list[tuple[torch.Tensor, torch.Tensor]], cuda_event: Any = None) -> None:
        self.cpu, self.cuda_event = cpu, cuda_event
        self._done = threading.Event()

    def complete(self) -> None:
        """Run the CPU copies and wait for the GPU ones (in the writer thread); then `wait()` returns."""
        try:
            for buf, source in self.cpu:
                buf.copy_(source)
            if self.cuda_event is not None:
                self.cuda_event.synchronize()
        finally:
            self.cpu = []  # drop the references to the live tensors
            self._done.set()

    def wait(self) -> None:
        self._done.wait()


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
    copies: PendingCopies  # the tensors hold the state once these are complete


def snapshot(step: int, state: TrainState, buffers: CopyBuffers) -> Snapshot:
    model, aliases = copy_tensors(state.model, "model/", buffers)
    tensors: dict[str, torch.Tensor] = {}
    state_json = {
        name: encode_state(value, name, tensors, buffers.copy)
        for name, value in (("optimizer", state.optimizer), ("scheduler", state.scheduler),
                            ("loop", dict(state.loop)), ("rng", state.rng))
    }
    return Snapshot(step, state.stage, model, aliases, tensors, state_json, json_copy(state.config), buffers.finish())


# --- writing ---------------------------------------------------------------------------------


def write_step_checkpoint(snap: Snapshot, directory: Path, fingerprint: ConfigFingerprint, keep_last: int | None) -> Path:
    """Write `step-<step>/` (manifest last), publish it, and keep the newest `keep_last` in all.

    Checkpoints beyond the newest `keep_last - 1` are deleted before the write, never the newest committed one,
    so the new files reuse the memory they free at once: memory freed after a commit has gone back to the VM's
    host by the next save, and touching it again costs ~2.7 ms a MiB (docs/benchmarks.md: 100M + AdamW sync
    saves 5 s apart, 1.04 s pruning first against 3.12 s pruning after the commit)."""
    snap.copies.complete()
    final = directory / step_dir_name(snap.step)
    if keep_last:
        prune(directory, max(keep_last - 1, 1), protect=final)
    partial = directory / (final.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    meta = {"format": CHECKPOINT_FORMAT}
    files = {  # fsynced together below, before the folder is published
        "model.safetensors": write_safetensors(partial / "model.safetensors", snap.model, meta, fsync=False),
        "state.safetensors": write_safetensors(partial / "state.safetensors", snap.state_tensors, meta, fsync=False),
        "state.json": write_json(partial / "state.json", {"model_aliases": snap.model_aliases, **snap.state_json},
                                 fsync=False),
        "config.json": write_json(partial / "config.json", snap.config, fsync=False),
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
    manifest[SELF_DIGEST] = header_digest(manifest)
    write_json(partial / MANIFEST_NAME, manifest, fsync=False)  # last: its presence means "complete"
    fsync_files([partial / name for name in [*files, MANIFEST_NAME]])
    publish_dir(partial, final, aside=final.with_name(final.name + ".replaced"))
    if keep_last:
        prune(directory, keep_last - 1, protect=final)
    return final


def prune(directory: Path, keep_others: int, protect: Path) -> None:
    """Delete the committed checkpoints other than `protect` (the one being written), all but the newest
    `keep_others` of them."""
    others = [path for _, path in committed_checkpoints(directory) if path != protect]
    for path in others[: max(0, len(others) - keep_others)]:
        shutil.rmtree(path, ignore_errors=True)


def write_model_tensors(path: Path, model: Mapping[str, torch.Tensor], aliases: Mapping[str, str],
                        config: Mapping[str, Any], fingerprint: ConfigFingerprint, step: int, stage: str,
                        copies: PendingCopies) -> Path:
    """Write copied tensors (once `copies` are complete) as one model file, its header holding config, step,
    stage, fingerprint and the digest of all that and the tensors."""
    copies.complete()
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
    }
    metadata[SELF_DIGEST] = model_file_digest(metadata, model)
    write_safetensors(partial, model, metadata)
    publish_file(partial, path)
    return path


def write_model_file(path: str | Path, model: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
                     fingerprint: ConfigFingerprint, step: int, stage: str) -> Path:
    """Synchronously write a model file (best / hand-off; see the package doc). Returns its path."""
    buffers = CopyBuffers(reuse=False, share_cpu_tensors=True)
    tensors, aliases = copy_tensors(model, "", buffers)
    return write_model_tensors(Path(path), tensors, aliases, config, fingerprint, step, stage, buffers.finish())
