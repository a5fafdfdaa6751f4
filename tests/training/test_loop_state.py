"""What the loop carries and saves (training/loop_state.py): the loop state read back from a checkpoint's JSON,
refused with the file named when malformed, the counters a new stage or epoch starts from, the log window."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from latentbridge.errors import UserError
from latentbridge.training.loop_state import LogWindow, LoopState

WHERE = Path("checkpoints/step-000000007/state.json")


def test_loop_state_survives_its_json_exactly():
    state = LoopState(plan=["pretrain_middle", "pretrain_adapter"], stage_index=1, epoch=2, batch_in_epoch=4, step=9,
                      global_step=21, best_val=0.5, evals_since_best=1, best={"pretrain_middle": 0.4},
                      best_scores={"pretrain_middle": 0.4}, early_stopped=["pretrain_middle"],
                      trainable={"pretrain_middle": 10}, metrics_lines=12, log_window={"steps": 1})
    assert LoopState.from_json(json.loads(json.dumps(state.to_json())), WHERE) == state


def test_the_checkpoint_keys_stay_those_existing_checkpoints_hold():
    """state.json's keys: renaming a field would stop every existing checkpoint from resuming."""
    assert sorted(LoopState(plan=[]).to_json()) == sorted(
        ["plan", "stage_index", "epoch", "batch_in_epoch", "step", "global_step", "best_val", "evals_since_best",
         "best", "best_scores", "early_stopped", "trainable", "metrics_lines", "log_window"])


def test_an_older_checkpoint_without_the_newer_fields_loads():
    state = LoopState.from_json({"plan": ["a"], "step": 3, "global_step": 3, "best": {}, "best_val": math.inf}, WHERE)
    assert state.step == 3 and state.metrics_lines is None and state.log_window == {}


@pytest.mark.parametrize("loop, why", [({"step": 1}, "incomplete"),
                                       ({"plan": ["a"], "step": -1}, "wrong type"),
                                       ({"plan": ["a"], "epoch": 1.5}, "wrong type"),
                                       ({"plan": "a"}, "wrong type"),
                                       ({"plan": ["a"], "best": []}, "wrong type")])
def test_a_malformed_loop_state_is_refused_naming_the_file(loop, why):
    with pytest.raises(UserError, match=rf"{WHERE} is malformed: its loop state .*{why}"):
        LoopState.from_json(loop, WHERE)


def test_a_new_stage_starts_its_counters_and_best_score_afresh_and_keeps_the_pipeline_records():
    state = LoopState(plan=["a", "b"], epoch=2, batch_in_epoch=3, step=7, global_step=7, best_val=0.2,
                      evals_since_best=2, best={"a": 0.2}, early_stopped=["a"])
    state.start_next_stage()
    assert (state.stage_index, state.epoch, state.batch_in_epoch, state.step) == (1, 0, 0, 0)
    assert state.best_val == math.inf and state.evals_since_best == 0
    assert state.global_step == 7 and state.best == {"a": 0.2} and state.early_stopped == ["a"]


def test_a_new_epoch_starts_at_its_first_batch():
    state = LoopState(plan=["a"], epoch=1, batch_in_epoch=6, step=3)
    state.start_next_epoch()
    assert (state.epoch, state.batch_in_epoch, state.step) == (2, 0, 3)


def test_a_resumed_log_window_averages_the_steps_before_and_after_the_checkpoint():
    window = LogWindow(started=0.0)
    window.add({"total": 1.0}, samples=4, tokens=10)
    resumed = LogWindow.resumed(json.loads(json.dumps(window.to_json())))
    resumed.add({"total": 3.0}, samples=4, tokens=0)
    assert resumed.mean() == {"total": 2.0} and (resumed.steps, resumed.samples, resumed.tokens) == (2, 8, 10)
    assert LogWindow.resumed({}).mean() == {}
