"""Learning-rate schedule: linear warmup, then decay (transformers' schedulers, not hand-rolled)."""

from __future__ import annotations

import math

import torch
from transformers import get_scheduler

SCHEDULES = ("linear", "cosine", "constant_with_warmup")


def optimizer_steps(batches_per_epoch: int, epochs: int, gradient_accumulation_steps: int) -> int:
    """Optimizer updates in a stage: a partial accumulation window at an epoch's end still steps."""
    if batches_per_epoch < 0 or epochs < 0 or gradient_accumulation_steps < 1:
        raise ValueError("batches_per_epoch and epochs must be >= 0, gradient_accumulation_steps >= 1")
    return epochs * math.ceil(batches_per_epoch / gradient_accumulation_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                    kind: str = "linear") -> torch.optim.lr_scheduler.LRScheduler:
    """Warm up linearly for `warmup_steps` (capped at `total_steps`), then decay to 0 over the rest.

    Step it once per optimizer update. Its state_dict() is JSON-able, so checkpoints store it as JSON.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError("warmup_steps and total_steps must be >= 0")

    total = max(1, total_steps)
    return get_scheduler(kind, optimizer, num_warmup_steps=min(warmup_steps, total), num_training_steps=total)
