"""Learning-rate schedules: each one's rates against transformers' own schedule functions, warmup rules."""

from __future__ import annotations

import pytest
import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_cosine_with_min_lr_schedule_with_warmup, get_linear_schedule_with_warmup)

from latentbridge.training.schedule import SCHEDULES, build_scheduler, optimizer_steps, warmup_steps_for


def lrs(warmup: int, total: int, kind: str = "linear", **kw) -> list[float]:
    return rates(lambda opt: build_scheduler(opt, warmup_steps=warmup, total_steps=total, kind=kind, **kw), total)


def rates(make, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_warmup_then_linear_decay():
    assert lrs(2, 6) == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])


def test_warmup_longer_than_training_is_capped():
    assert lrs(100, 4) == pytest.approx([0.0, 0.25, 0.5, 0.75])


TRANSFORMERS = {
    "linear": lambda opt, w, n: get_linear_schedule_with_warmup(opt, w, n),
    "cosine": lambda opt, w, n: get_cosine_schedule_with_warmup(opt, w, n),
    "constant_with_warmup": lambda opt, w, n: get_constant_schedule_with_warmup(opt, w),
    "cosine_with_min_lr": lambda opt, w, n: get_cosine_with_min_lr_schedule_with_warmup(opt, w, n, min_lr_rate=0.1),
}


@pytest.mark.parametrize("kind", SCHEDULES)
def test_each_schedule_gives_transformers_rates(kind):
    ours = lrs(3, 20, kind, min_lr_ratio=0.1 if kind == "cosine_with_min_lr" else 0.0)
    theirs = rates(lambda opt: TRANSFORMERS[kind](opt, 3, 20), 20)
    assert ours == pytest.approx(theirs, abs=0, rel=1e-12)
    assert ours[3] == pytest.approx(1.0)  # the peak right after the warmup, whatever the schedule
    at_15 = {"linear": 5 / 17, "constant_with_warmup": 1.0, "cosine": 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 12 / 17)).item()),
             "cosine_with_min_lr": 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 12 / 17)).item())}
    assert ours[15] == pytest.approx(at_15[kind], rel=1e-6)


def test_cosine_with_min_lr_ends_at_its_floor():
    assert min(lrs(0, 50, "cosine_with_min_lr", min_lr_ratio=0.25)) == pytest.approx(0.25, rel=1e-2)


def test_warmup_ratio_is_a_share_of_the_stage_rounded_up():
    assert warmup_steps_for(total_steps=45, warmup_steps=200, warmup_ratio=0.1) == 5  # ceil(4.5), as transformers
    assert warmup_steps_for(total_steps=45, warmup_steps=7, warmup_ratio=None) == 7


def test_optimizer_steps_counts_partial_accumulation_windows():
    assert optimizer_steps(batches_per_epoch=10, epochs=3, gradient_accumulation_steps=3) == 12


def test_unknown_schedule_and_a_stray_floor_are_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        lrs(1, 2, kind="exotic")
    with pytest.raises(ValueError, match="cosine_with_min_lr only"):
        lrs(1, 2, kind="cosine", min_lr_ratio=0.1)
