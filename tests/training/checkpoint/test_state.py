"""RNG and loop state: captured and restored exactly, so a resumed run continues the same numbers."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from latentbridge.training.checkpoint import (TrainState, capture_rng_state, find_latest, load_checkpoint,
                                             restore_rng_state)
from latentbridge.training.schedule import build_scheduler
from tests.factories import tiny_checkpointer, tiny_fingerprint

FP = tiny_fingerprint()


def _setup(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=8)
    return model, opt, sched


def _train(model, opt, sched, steps: int):
    for _ in range(steps):
        x = torch.randn(5, 6) + np.random.rand() + random.random()  # every RNG feeds the step
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_rng_capture_restore_round_trip():
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_resume_round_trip_is_exact(tmp_path):
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    ref = _setup(1)
    _train(*ref, 8)

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    model, opt, sched = _setup(1)
    _train(model, opt, sched, 4)
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(4, TrainState(stage="s", model=model.state_dict(), optimizer=opt.state_dict(),
                                 scheduler=sched.state_dict(), loop={"step": 4}, rng=capture_rng_state()))
    _train(model, opt, sched, 3)  # diverge: the resumed run must not see this

    loaded = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    model2, opt2, sched2 = _setup(99)
    model2.load_state_dict(loaded.model)
    opt2.load_state_dict(loaded.optimizer)
    sched2.load_state_dict(loaded.scheduler)
    restore_rng_state(loaded.rng)
    assert loaded.loop == {"step": 4}
    _train(model2, opt2, sched2, 4)

    for a, b in zip(ref[0].state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert ref[2].get_last_lr() == sched2.get_last_lr()


def test_optimizer_state_restores_exactly(tmp_path):
    model, opt, sched = _setup(3)
    _train(model, opt, sched, 2)
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(2, TrainState(stage="s", model=model.state_dict(), optimizer=opt.state_dict(),
                                 loop={"best": float("inf")}))
    loaded = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    a, b = opt.state_dict(), loaded.optimizer
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, value in a["state"][k].items():
            assert torch.equal(value, b["state"][k][name])
    assert loaded.loop == {"best": float("inf")}
