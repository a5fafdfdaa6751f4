"""The async checkpointer: the training loop waits only while the state is copied; a thread writes it.

One save is in flight at a time; an error in the writer is raised by the next `save`/`wait`/`close`,
and the previous checkpoint stays intact because nothing is deleted before a commit.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from latentbridge.errors import UserError
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint
from latentbridge.training.checkpoint.format import PARTIAL_SUFFIX, committed_checkpoints, step_dir_name
from latentbridge.training.checkpoint.state import TrainState
from latentbridge.training.checkpoint.write import (CopyBuffers, PendingCopies, copy_tensors, json_copy, snapshot,
                                                    write_model_tensors, write_step_checkpoint)


class CheckpointWriteError(UserError):
    """A background save failed; the previous committed checkpoint is untouched."""


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


class AsyncCheckpointer:
    """Saves step checkpoints and model files; the loop waits only for the copy of the state.

    `async_save=False` runs the very same write and waits for it (writing CPU tensors from where they are,
    without a copy). On ranks other than 0 (`is_main=False`) every call is a no-op. `keep_last=None` keeps
    every checkpoint.

    `background_copy=True` moves the copy of CPU tensors into the writer thread too, so it overlaps the
    next step's forward and backward: `save()` then returns at once, and the caller must call
    `wait_for_copy()` before it changes the saved tensors (before `optimizer.step()`). GPU tensors never
    block the loop: their copies are queued on its stream, ahead of the next update.
    """

    def __init__(self, directory: str | Path, *, fingerprint: ConfigFingerprint, keep_last: int | None = 3,
                 async_save: bool = True, is_main: bool = True, reuse_buffers: bool = True,
                 background_copy: bool = False) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.keep_last = keep_last
        self.async_save = async_save
        self.is_main = is_main
        self._buffers = CopyBuffers(reuse_buffers, share_cpu_tensors=not async_save,
                                    defer_cpu_copies=async_save and background_copy)
        self._copies: PendingCopies | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._error_target: Path | None = None
        self._writing_step: int | None = None
        self._last: tuple[int, Path] | None = None
        self._lock = threading.Lock()
        if is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            left_by_a_crash = [*self.directory.glob("step-*" + PARTIAL_SUFFIX), *self.directory.glob("step-*.replaced")]
            for entry in left_by_a_crash:  # never valid: unfinished, or set aside by a publish that was cut short
                shutil.rmtree(entry, ignore_errors=True)
            latest = committed_checkpoints(self.directory)
            self._last = latest[-1] if latest else None

    # -- public API

    def save(self, step: int, state: TrainState) -> None:
        """Snapshot `state` now; write `step-<step>/` in the background (or right away when not async)."""
        if not self.is_main:
            return
        self.wait()
        snap = snapshot(step, state, self._buffers)
        target = self.directory / step_dir_name(step)
        self._start(step, target, snap.copies,
                    lambda: write_step_checkpoint(snap, self.directory, self.fingerprint, self.keep_last))

    def prepare(self, state: TrainState) -> None:
        """Allocate the reused copy buffers now (at set-up), so the first save in the loop costs one copy only."""
        if self.is_main and self.async_save:
            self.wait()
            snapshot(0, state, self._buffers).copies.complete()  # touch the fresh memory now, not in the first save

    def save_model(self, path: str | Path, model: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
                   step: int, stage: str) -> None:
        """Snapshot a model state dict now; write it as a model file (best / hand-off) in the background."""
        if not self.is_main:
            return
        self.wait()
        tensors, aliases = copy_tensors(model, "model/", self._buffers)
        copies = self._buffers.finish()
        config = json_copy(config)
        path = Path(path)
        self._start(None, path, copies,
                    lambda: write_model_tensors(path, tensors, aliases, config, self.fingerprint, step, stage, copies))

    def wait_for_copy(self) -> None:
        """Block until the state of the save in flight has been copied (with `background_copy`; else a no-op)."""
        if self._copies is not None:
            self._copies.wait()

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

    def _start(self, step: int | None, target: Path, copies: PendingCopies, write: Callable[[], Path]) -> None:
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
        self._copies = copies
        self._thread = threading.Thread(target=run, name="checkpoint-writer", daemon=False)
        self._thread.start()
        if not self.async_save:
            self.wait()

    def __enter__(self) -> "AsyncCheckpointer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
