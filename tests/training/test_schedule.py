"""Warmup then linear decay."""

from __future__ import annotations

import pytest
import torch

from latentbridge.training.schedule import build_scheduler, optimizer_steps


def lrs(warmup: int, total: int, kind: str = "linear") -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, warmup_steps=warmup, total_steps=total, kind=kind)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_warmup_then_linear_decay():
    assert lrs(2, 6) == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])


def test_warmup_longer_than_training_is_capped():
    assert lrs(100, 4) == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_optimizer_steps_counts_partial_accumulation_windows():
    assert optimizer_steps(batches_per_epoch=10, epochs=3, gradient_accumulation_steps=3) == 12


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        lrs(1, 2, kind="exotic")
