"""Checkpoints that survive crashes and never run pickle.

Two kinds of files, both written through `<name>.partial` + fsync + rename:

- **Step checkpoints** (`<checkpoint_dir>/step-000000500/`, for `--resume`): a folder with
  `model.safetensors` (the unwrapped model's state dict), `state.safetensors` (every other
  tensor: optimizer moments, RNG states), `state.json` (optimizer/scheduler
  skeletons, loop state incl. data position, python/numpy RNG), `config.json` (the
  resolved config) and `manifest.json`, written LAST, listing every file with its size
  and sha256, the step, the stage and the config fingerprint. A folder without a valid
  manifest is never loaded and never picked by `find_latest`.
- **Model files** (`best_model.pt` and friends, for `infer`/`eval` and stage hand-off): ONE
  safetensors file under the documented name. Its header metadata holds the resolved
  config JSON, step, stage, fingerprint and a sha256 over the tensors. Load it with
  `load_model_file`; any safetensors tool can read it too.

`AsyncCheckpointer.save()` blocks the training loop only while the state is copied (to
reused CPU buffers, pinned when the source is on a GPU); a background thread writes,
fsyncs, commits, then prunes to the last `keep_last` committed checkpoints. One save is in
flight at a time; an error in the writer is raised by the next `save`/`wait`/`close`, and
the previous checkpoint stays intact because nothing is deleted before a commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from latentbridge.errors import UserError

CHECKPOINT_FORMAT = "latentbridge-checkpoint"
MODEL_FILE_FORMAT = "latentbridge-model"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_CHUNK = 8 << 20

# Config fields that change tensor shapes or what the weights mean, plus the unfrozen layer counts
# (they decide which backbone layers are in the saved trainable state). A checkpoint written under
# different values of these cannot be resumed or loaded (see `config_fingerprint`).
ARCHITECTURE_FIELDS = (
    "latent_dim", "latent_seq_len", "prefix_len", "modernbert_hidden_dim", "gpt2_hidden_dim",
    "middle_hidden_dim", "middle_transformer_layers", "middle_num_heads", "middle_ffn_multiplier",
    "middle_use_rope", "adapter_num_heads", "adapter_use_rope", "use_prefix_rope", "rope_base",
    "use_rmsnorm", "modernbert_model", "gpt2_model", "use_stop_latent", "stop_latent_init",
    "stop_latent_seed", "normalize_latent", "num_encoder_unfrozen_layers", "decoder_unfrozen_layers",
)


class CheckpointWriteError(UserError):
    """A background save failed; the previous committed checkpoint is untouched."""


# ----------------------------------------------------------------------------- fingerprint


@dataclass(frozen=True)
class ConfigFingerprint:
    """sha256 over the values that make weights compatible; `fields` lets errors name the difference."""

    digest: str
    fields: Mapping[str, Any]


def config_fingerprint(config_values: Mapping[str, Any], keys: Iterable[str] = ARCHITECTURE_FIELDS) -> ConfigFingerprint:
    """Fingerprint of `config_values` restricted to `keys` (missing keys are skipped)."""
    fields = {k: config_values[k] for k in keys if k in config_values}
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return ConfigFingerprint(hashlib.sha256(blob.encode()).hexdigest()[:16], fields)


def _fingerprint_mismatch(path: Path, found: Mapping[str, Any], expected: ConfigFingerprint | str | None) -> str | None:
    if expected is None:
        return None
    want = expected if isinstance(expected, str) else expected.digest
    if found.get("fingerprint") == want:
        return None
    diffs = []
    if isinstance(expected, ConfigFingerprint):
        theirs = found.get("fingerprint_fields") or {}
        for key in sorted(set(theirs) | set(expected.fields)):
            if theirs.get(key) != expected.fields.get(key):
                diffs.append(f"{key}: checkpoint {theirs.get(key)!r}, now {expected.fields.get(key)!r}")
    detail = ("; ".join(diffs)) if diffs else f"fingerprint {found.get('fingerprint')} != {want}"
    return (
        f"checkpoint {path} was written with an incompatible model configuration ({detail}). "
        "Use the settings it was trained with, or point --checkpoint-dir at a fresh folder."
    )


# ----------------------------------------------------------------------------- state


@dataclass
class TrainState:
    """Everything a step checkpoint holds. Tensors may live on any device: save() copies them.

    `model` is the UNWRAPPED model's state_dict (not DDP/compiled). `loop` is JSON-able loop
    state, including the data position (stage index, epoch, batch within epoch, ...).
    `rng` comes from `capture_rng_state()`.
    """

    stage: str
    model: Mapping[str, torch.Tensor]
    optimizer: Mapping[str, Any] | None = None
    scheduler: Mapping[str, Any] | None = None
    loop: Mapping[str, Any] = field(default_factory=dict)
    rng: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LoadedCheckpoint:
    """A verified step checkpoint, tensors on CPU; pass the parts to load_state_dict()."""

    path: Path
    step: int
    stage: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    loop: dict[str, Any]
    rng: dict[str, Any] | None
    config: dict[str, Any]
    manifest: dict[str, Any]


@dataclass
class ModelFile:
    """A verified model file (best / hand-off), tensors on CPU."""

    path: Path
    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    step: int
    stage: str
    fingerprint: str


@dataclass(frozen=True)
class CheckpointStatus:
    """What the UI shows: a save in flight, the last committed (safe) one, a pending error."""

    writing_step: int | None
    last_committed_step: int | None
    last_committed_path: Path | None
    error: str | None


def should_save(step: int, save_every: int) -> bool:
    """True on every `save_every`-th optimizer step (never at step 0; never when save_every <= 0)."""
    return save_every > 0 and step > 0 and step % save_every == 0


# ----------------------------------------------------------------------------- RNG


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when initialised) CUDA generator states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of capture_rng_state (CUDA states restored when the device count matches)."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch_cpu"])
    cuda = state.get("torch_cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(list(cuda))


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# ----------------------------------------------------------------------------- snapshot


class _Buffers:
    """CPU copies reused across saves, so a save costs a memcpy instead of fresh allocations."""

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self._pool: dict[str, torch.Tensor] = {}
        self.cuda_used = False

    def copy(self, key: str, t: torch.Tensor) -> torch.Tensor:
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


def _copy_tensors(tensors: Mapping[str, torch.Tensor], prefix: str, buffers: _Buffers) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor], buffers: _Buffers) -> Any:
    """JSON skeleton of a nested state dict; tensors go to `tensors` under their path."""
    if isinstance(obj, torch.Tensor):
        key = path
        while key in tensors:
            key += "_"
        tensors[key] = buffers.copy(key, obj)
        return {"__tensor__": key}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), path, tensors, buffers)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}/{i}", tensors, buffers) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}/{i}", tensors, buffers) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{path}/{k}", tensors, buffers) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, path, tensors, buffers), _encode(v, f"{path}/{k}", tensors, buffers)] for k, v in obj.items()]}
    raise TypeError(f"cannot store {type(obj).__name__} at {path!r} in a checkpoint (only tensors and JSON values, no pickle)")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


@dataclass
class _Snapshot:
    step: int
    stage: str
    model: dict[str, torch.Tensor]
    model_aliases: dict[str, str]
    state_tensors: dict[str, torch.Tensor]
    state_json: dict[str, Any]
    config: dict[str, Any]


def _snapshot(step: int, state: TrainState, buffers: _Buffers) -> _Snapshot:
    model, aliases = _copy_tensors(state.model, "model/", buffers)
    tensors: dict[str, torch.Tensor] = {}
    state_json = {
        name: _encode(value, name, tensors, buffers)
        for name, value in (("optimizer", state.optimizer), ("scheduler", state.scheduler), ("loop", dict(state.loop)),
                            ("rng", state.rng))
    }
    buffers.finish()
    config = json.loads(json.dumps(dict(state.config), default=str))
    return _Snapshot(step, state.stage, model, aliases, tensors, state_json, config)


# ----------------------------------------------------------------------------- file helpers


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> dict[str, Any]:
    """fsync a written file and return its manifest entry (size and sha256)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return {"bytes": size, "sha256": h.hexdigest()}


def _write_json(path: Path, obj: Any) -> dict[str, Any]:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    return _fsync_file(path)


def _tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _replace_dir(partial: Path, final: Path) -> None:
    """Atomically publish `partial` as `final` (a committed folder of the same name is replaced)."""
    aside = None
    if final.exists():
        aside = final.with_name(final.name + ".replaced")
        if aside.exists():
            shutil.rmtree(aside)
        os.rename(final, aside)
    os.rename(partial, final)
    _fsync_dir(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


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


def _prune(directory: Path, keep_last: int | None, protect: Path) -> None:
    if not keep_last:
        return
    committed = committed_checkpoints(directory)
    for _, path in committed[: max(0, len(committed) - keep_last)]:
        if path != protect:
            shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- writers


def _write_step_checkpoint(snap: _Snapshot, directory: Path, fingerprint: ConfigFingerprint, keep_last: int | None) -> Path:
    final = directory / step_dir_name(snap.step)
    partial = directory / (final.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    files: dict[str, Any] = {}
    save_file(snap.model, partial / "model.safetensors", metadata={"format": CHECKPOINT_FORMAT})
    files["model.safetensors"] = _fsync_file(partial / "model.safetensors")
    save_file(snap.state_tensors, partial / "state.safetensors", metadata={"format": CHECKPOINT_FORMAT})
    files["state.safetensors"] = _fsync_file(partial / "state.safetensors")
    files["state.json"] = _write_json(partial / "state.json", {"model_aliases": snap.model_aliases, **snap.state_json})
    files["config.json"] = _write_json(partial / "config.json", snap.config)
    _fsync_dir(partial)
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
    _write_json(partial / MANIFEST_NAME, manifest)  # last: its presence means "complete"
    _fsync_dir(partial)
    _replace_dir(partial, final)
    _prune(directory, keep_last, protect=final)
    return final


def _write_model_file(path: Path, model: Mapping[str, torch.Tensor], aliases: Mapping[str, str], config: Mapping[str, Any],
                      fingerprint: ConfigFingerprint, step: int, stage: str) -> Path:
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
        "tensors_sha256": _tensor_digest(model),
    }
    save_file(dict(model), partial, metadata=metadata)
    _fsync_file(partial)
    os.replace(partial, path)
    _fsync_dir(path.parent)
    return path


def write_model_file(path: str | Path, model: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
                     fingerprint: ConfigFingerprint, step: int, stage: str) -> Path:
    """Synchronously write a model file (see module doc). Returns its path."""
    tensors, aliases = _copy_tensors(model, "", _Buffers(reuse=False))
    return _write_model_file(Path(path), tensors, aliases, config, fingerprint, step, stage)


# ----------------------------------------------------------------------------- the checkpointer


class AsyncCheckpointer:
    """Saves step checkpoints and model files; the loop waits only for the copy of the state.

    `async_save=False` runs the very same write and waits for it. On ranks other than 0
    (`is_main=False`) every call is a no-op. `keep_last=None` keeps every checkpoint.
    """

    def __init__(self, directory: str | Path, *, fingerprint: ConfigFingerprint, keep_last: int | None = 3,
                 async_save: bool = True, is_main: bool = True, reuse_buffers: bool = True) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.keep_last = keep_last
        self.async_save = async_save
        self.is_main = is_main
        self._buffers = _Buffers(reuse_buffers)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._error_target: Path | None = None
        self._writing_step: int | None = None
        self._last: tuple[int, Path] | None = None
        self._lock = threading.Lock()
        if is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            for entry in self.directory.glob("step-*" + PARTIAL_SUFFIX):  # left by a crash: never valid
                shutil.rmtree(entry, ignore_errors=True)
            latest = committed_checkpoints(self.directory)
            self._last = latest[-1] if latest else None

    # -- public API

    def save(self, step: int, state: TrainState) -> None:
        """Snapshot `state` now; write `step-<step>/` in the background (or right away when not async)."""
        if not self.is_main:
            return
        self.wait()
        snap = _snapshot(step, state, self._buffers)
        target = self.directory / step_dir_name(step)
        self._start(step, target, lambda: _write_step_checkpoint(snap, self.directory, self.fingerprint, self.keep_last))

    def prepare(self, state: TrainState) -> None:
        """Allocate the reused copy buffers now (at set-up), so the first save in the loop costs one copy only."""
        if self.is_main:
            self.wait()
            _snapshot(0, state, self._buffers)

    def save_model(self, path: str | Path, model: Mapping[str, torch.Tensor], *, config: Mapping[str, Any], step: int, stage: str) -> None:
        """Snapshot a model state dict now; write it as a model file (best / hand-off) in the background."""
        if not self.is_main:
            return
        self.wait()
        tensors, aliases = _copy_tensors(model, "model/", self._buffers)
        self._buffers.finish()
        config = json.loads(json.dumps(dict(config), default=str))
        path = Path(path)
        self._start(None, path, lambda: _write_model_file(path, tensors, aliases, config, self.fingerprint, step, stage))

    def wait(self) -> Path | None:
        """Block until the save in flight is committed; raise its error if it failed. Returns the last committed step checkpoint."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, target = self._error, self._error_target
            self._error = self._error_target = None
            last = f"; the last committed checkpoint {self._last[1]} is intact" if self._last else ""
            raise CheckpointWriteError(f"saving checkpoint {target} failed: {type(err).__name__}: {err}{last}") from err
        return self._last[1] if self._last else None

    def close(self) -> None:
        """Finish the save in flight (raising its error, if any)."""
        self.wait()

    def status(self) -> CheckpointStatus:
        with self._lock:
            return CheckpointStatus(
                writing_step=self._writing_step,
                last_committed_step=self._last[0] if self._last else None,
                last_committed_path=self._last[1] if self._last else None,
                error=repr(self._error) if self._error else None,
            )

    # -- internals

    def _start(self, step: int | None, target: Path, write: Callable[[], Path]) -> None:
        def run() -> None:
            try:
                path = write()
                with self._lock:
                    if step is not None:
                        self._last = (step, path)
            except BaseException as exc:  # surfaced by the next save/wait/close
                with self._lock:
                    self._error, self._error_target = exc, target
            finally:
                with self._lock:
                    self._writing_step = None

        self._writing_step = step
        self._thread = threading.Thread(target=run, name="checkpoint-writer", daemon=False)
        self._thread.start()
        if not self.async_save:
            self.wait()

    def __enter__(self) -> "AsyncCheckpointer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- loading


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist.")
    if path.name.endswith(PARTIAL_SUFFIX):
        raise UserError(f"checkpoint {path} is an unfinished save (a '{PARTIAL_SUFFIX}' folder); use a committed one.")
    if not path.is_dir():
        raise UserError(
            f"checkpoint {path} is a file, not a latentbridge checkpoint folder "
            "(model files like best_model.pt load with load_model_file; pickled .pt files are never loaded)."
        )
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise UserError(
            f"checkpoint {path} has no {MANIFEST_NAME}: it is torn (the save was interrupted) "
            "or not a latentbridge checkpoint. Resume from an earlier one."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint {path}: {MANIFEST_NAME} is unreadable ({exc}); the checkpoint is torn.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"checkpoint {path} is not a latentbridge checkpoint (its manifest has format {manifest.get('format') if isinstance(manifest, dict) else None!r}).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version!r}; this latentbridge reads versions up to {FORMAT_VERSION}.")
    return manifest


def _verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise UserError(f"checkpoint {path}: the manifest lists no files; the checkpoint is torn.")
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            raise UserError(f"checkpoint {path} is torn: {name} is missing.")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise UserError(f"checkpoint {path} is torn: {name} has {size} bytes, the manifest says {entry['bytes']}.")
        h = hashlib.sha256()
        with open(file, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            raise UserError(f"checkpoint {path} is corrupt: the sha256 of {name} does not match its manifest.")


def load_checkpoint(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None, *, verify: bool = True) -> LoadedCheckpoint:
    """Load a committed step checkpoint, refusing torn, foreign or config-incompatible ones with UserError.

    `expected_fingerprint=None` skips the compatibility check. `verify=False` skips the sha256 pass.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    if manifest.get("kind") != "step":
        raise UserError(f"checkpoint {path} is a {manifest.get('kind')!r} checkpoint, not a resumable step checkpoint.")
    problem = _fingerprint_mismatch(path, manifest, expected_fingerprint)
    if problem:
        raise UserError(problem)
    if verify:
        _verify_files(path, manifest)
    try:
        model = load_file(path / "model.safetensors")
        tensors = load_file(path / "state.safetensors")
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except Exception as exc:  # a damaged file that slipped past verify=False
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is torn or corrupt.") from exc
    for alias, canonical in state.pop("model_aliases", {}).items():
        model[alias] = model[canonical]
    decoded = {k: _decode(v, tensors) for k, v in state.items()}
    return LoadedCheckpoint(
        path=path, step=int(manifest["step"]), stage=str(manifest["stage"]), model=model,
        optimizer=decoded.get("optimizer"), scheduler=decoded.get("scheduler"),
        loop=decoded.get("loop") or {}, rng=decoded.get("rng"), config=config, manifest=manifest,
    )


def load_model_file(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None = None) -> ModelFile:
    """Load a model file (best / hand-off), or the model of a step checkpoint folder; UserError if torn/foreign/incompatible."""
    path = Path(path)
    if path.is_dir():
        ckpt = load_checkpoint(path, expected_fingerprint)
        return ModelFile(path, ckpt.model, ckpt.config, ckpt.step, ckpt.stage, ckpt.manifest["fingerprint"])
    if not path.exists():
        raise UserError(f"model file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        model = load_file(path)
    except Exception as exc:
        raise UserError(
            f"model file {path} is not a readable safetensors file ({type(exc).__name__}: {exc}): it is torn, "
            "or a foreign file (pickled .pt files are never loaded)."
        ) from exc
    if meta.get("format") != MODEL_FILE_FORMAT:
        raise UserError(f"model file {path} is not a latentbridge model file (format {meta.get('format')!r}).")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise UserError(f"model file {path} has format version {meta.get('format_version')}; this latentbridge reads up to {FORMAT_VERSION}.")
    found = {"fingerprint": meta.get("fingerprint"), "fingerprint_fields": json.loads(meta.get("fingerprint_fields", "{}"))}
    problem = _fingerprint_mismatch(path, found, expected_fingerprint)
    if problem:
        raise UserError(problem)
    if _tensor_digest(model) != meta.get("tensors_sha256"):
        raise UserError(f"model file {path} is corrupt: its tensors do not match the sha256 in its header.")
    for alias, canonical in json.loads(meta.get("aliases", "{}")).items():
        model[alias] = model[canonical]
    return ModelFile(path, model, json.loads(meta["config"]), int(meta["step"]), meta["stage"], meta["fingerprint"])
