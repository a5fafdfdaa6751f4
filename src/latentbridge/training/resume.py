"""Resuming exactly where a run stopped: the loop state and weights of a step checkpoint, the optimizer, schedule
and random generators of the stage it stopped in, and the run's records cut back to that step."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from latentbridge.errors import UserError
from latentbridge.training import sharding
from latentbridge.training.checkpoint import (MODEL_TENSORS, STATE_TENSORS, LoadedCheckpoint, restore,
                                              restore_optimizer, restore_rng_state)
from latentbridge.training.loop_state import LoopState
from latentbridge.training.metrics import MetricsWriter
from latentbridge.training.display import ProgressDisplay
from latentbridge.training.run_record import LoggedLine


def resumed_state(resume: LoadedCheckpoint, plan: list[str],
                  load_trainable: Callable[[Mapping[str, torch.Tensor]], None]) -> LoopState:
    """The checkpoint's loop state, its trained weights loaded through `load_trainable`; UserError when it
    belongs to a run that planned other stages."""
    state = LoopState.from_json(resume.loop, resume.path / "state.json")
    if state.plan != plan:
        raise UserError(f"checkpoint {resume.path} belongs to a run with stages {state.plan}; this run plans "
                        f"{plan}. Use the same pipeline settings, or start fresh with another --checkpoint-dir.")
    restore(resume.path / MODEL_TENSORS, "model", load_trainable, resume.model)
    return state


def restore_stage(resume: LoadedCheckpoint, optimizer: torch.optim.Optimizer, scheduler: Any, *, sharded: bool) -> None:
    """The optimizer, schedule and random generators of the stage the checkpoint stopped in."""
    restore_optimizer(resume.path / STATE_TENSORS, optimizer, resume.optimizer)
    if sharded:
        sharding.shard_optimizer_state(optimizer)
    restore(resume.path / "state.json", "scheduler", scheduler.load_state_dict, resume.scheduler)
    restore(resume.path / STATE_TENSORS, "random generator", restore_rng_state, resume.rng)


def continue_the_record(state: LoopState, metrics: MetricsWriter, display: ProgressDisplay) -> set[LoggedLine]:
    """Make the run's records read as if it had never stopped: metrics.jsonl cut back to the lines it held at
    the checkpoint (the stopped run's later lines are logged again, identically). Returns those lines, which
    the experiment trackers received already and must not get twice."""
    if state.metrics_lines is None:  # a checkpoint of an older version: the file is kept as it is
        return set()
    cut = metrics.truncate_to(state.metrics_lines)
    if cut:
        display.message(f"{metrics.path}: {len(cut)} line(s) logged after step {state.global_step} by "
                        "the stopped run removed; they are logged again as the run continues")
    return {(r.get("split", "train"), r.get("stage"), r.get("global_step")) for r in cut}
