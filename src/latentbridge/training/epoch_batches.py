"""Which examples an epoch trains, in which order: a seeded permutation of the stage's training examples, each
rank's share of it, cut into the accumulation windows still to train (a resume skips the ones already trained)."""

from __future__ import annotations

import math
from itertools import islice
from typing import Any, Iterator

import torch

from latentbridge.training.settings import StageData, TrainSettings, stage_loader

Window = list[dict[str, Any]]  # the micro-batches of one optimizer step


def epoch_order(n: int, seed: int, stage_index: int, epoch: int) -> list[int]:
    """The example order of one epoch: a permutation fixed by (seed, stage, epoch), so a resume can skip into it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + stage_index * 10_007 + epoch)
    return torch.randperm(n, generator=g).tolist()


def batches_per_epoch(examples: int, batch_size: int, ranks: int) -> int:
    """Micro-batches one rank trains per epoch: every rank takes the same share (the remainder is left out)."""
    return math.ceil(examples // ranks / batch_size)


def windows_left(data: StageData, batch_size: int, settings: TrainSettings, accelerator: Any, *, stage_index: int,
                 epoch: int, batch_in_epoch: int) -> Iterator[Window]:
    """This rank's accumulation windows of the rest of the epoch, starting after `batch_in_epoch` micro-batches."""
    order = epoch_order(len(data.train), settings.seed, stage_index, epoch)
    ranks = accelerator.num_processes
    mine = order[accelerator.process_index::ranks][: len(order) // ranks]
    rest = mine[batch_in_epoch * batch_size:]
    if not rest:
        return
    batches = iter(stage_loader(data.train, rest, batch_size, data.collate, settings, accelerator.device))
    while window := list(islice(batches, settings.gradient_accumulation_steps)):
        yield window
