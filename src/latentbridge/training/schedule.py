"""Learning-rate schedules: warmup, then decay (transformers' schedulers, not hand-rolled)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from transformers import get_scheduler

SCHEDULES = ("linear", "cosine", "constant_with_warmup", "cosine_with_min_lr")


def optimizer_steps(batches_per_epoch: int, epochs: int, gradient_accumulation_steps: int) -> int:
    """Optimizer updates in a stage: a partial accumulation window at an epoch's end still steps."""
    if batches_per_epoch < 0 or epochs < 0 or gradient_accumulation_steps < 1:
        raise ValueError("batches_per_epoch and epochs must be >= 0, gradient_accumulation_steps >= 1")
    return epochs * math.ceil(batches_per_epoch / gradient_accumulation_steps)


def warmup_steps_for(total_steps: int, warmup_steps: int, warmup_ratio: Optional[float] = None) -> int:
    """The warmup of a stage of `total_steps`: ceil(warmup_ratio x total_steps) when a ratio is given (as
    transformers' TrainingArguments rounds it), else `warmup_steps`."""
    if warmup_ratio is not None:
        return math.ceil(total_steps * warmup_ratio)
    return warmup_steps


def build_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                    kind: str = "linear", min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm up linearly for `warmup_steps` (capped at `total_steps`), then follow `kind` over the rest:
    linear / cosine decay to 0, constant, or cosine decay to `min_lr_ratio` x the peak (cosine_with_min_lr).

    Step it once per optimizer update. Its state_dict() is JSON-able, so checkpoints store it as JSON.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError("warmup_steps and total_steps must be >= 0")
    if min_lr_ratio and kind != "cosine_with_min_lr":
        raise ValueError(f"min_lr_ratio applies to cosine_with_min_lr only, not {kind}")

    total = max(1, total_steps)
    extra = {"min_lr_rate": min_lr_ratio} if kind == "cosine_with_min_lr" else None
    return get_scheduler(kind, optimizer, num_warmup_steps=min(warmup_steps, total), num_training_steps=total,
                         scheduler_specific_kwargs=extra)
