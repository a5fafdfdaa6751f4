"""The Validator (training/validation.py): the early-stop decision, the best weights it keeps, train modes restored.

The decision tests script the validation losses (and ROUGE) so that each case is exact; the mode tests run a real
validation of the tiny model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from accelerate import Accelerator
from torch.utils.data import Dataset

from latentbridge.assets import ensure_tiny_assets
from latentbridge.data.loader import Collate
from latentbridge.models.bridge import set_trainable
from latentbridge.training.loop_state import LoopState
from latentbridge.training.objective import StageObjective, frozen_subtrees, set_train_modes
from latentbridge.training.display import NullDisplay
from latentbridge.training.settings import StageData, TrainSettings
from latentbridge.training.stages import BUDGET_KEYS, PRETRAIN_BEST, StageBudget, plan_stages
from latentbridge.training.validation import Validator
from tests.factories import TINY_DIM, TINY_K, make_model


class TokenRecords(Dataset):
    """Cache-shaped records of a token stage: latents (K, D) and target ids of the tiny decoder's vocabulary."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(3, 8, size=n)
        self.rows = [{"input_latents": rng.standard_normal((TINY_K, TINY_DIM)).astype(np.float32),
                      "target_latents": rng.standard_normal((TINY_K, TINY_DIM)).astype(np.float32),
                      "target_ids": rng.integers(5, 200, size=int(length)),
                      "target_attention_mask": np.ones(int(length), dtype=np.int64)} for length in lengths]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {**self.rows[i], "index": i}


class Said(NullDisplay):
    """A display that keeps the messages and samples it was given."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.samples: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def sample(self, output: str, target: str | None = None) -> None:
        self.samples.append(output)


PLAN = plan_stages(pipeline_mode="two_stage_scientific", training_phase="normal", run_pretraining=True,
                   run_finetuning=False, adapter_pretrain_use_middle=False, freeze_encoder_compression=True,
                   train_decoder_layers=False, budgets={k: StageBudget(epochs=1, batch_size=2) for k in BUDGET_KEYS})
LATENT_STAGE, TOKEN_STAGE = PLAN  # pretrain_middle, pretrain_adapter (reads the target's own latents)


@pytest.fixture(scope="module")
def model(tiny_root):
    model = make_model(ensure_tiny_assets(tiny_root, seed=0), seed=0, middle={"dropout": 0.1}, adapter={"dropout": 0.1})
    set_trainable(model, TOKEN_STAGE.trains)
    return model


class Harness:
    """A Validator whose saves and metrics lines are kept in lists."""

    def __init__(self, model, tmp_path: Path, **settings) -> None:
        self.saved: list[tuple[str, int, str]] = []
        self.recorded: list = []
        self.display = Said()
        settings = {"learning_rate": 0.0, "checkpoint_dir": tmp_path, "sample_max_tokens": 3, **settings}
        self.validator = Validator(model, TrainSettings(**settings), Accelerator(cpu=True), display=self.display,
                                   record=self.recorded.append, sharded=False,
                                   save_model=lambda path, step, stage: self.saved.append((path.name, step, stage)),
                                   text_scorer=lambda outputs, references: {"rougeL": 0.0})

    def script(self, monkeypatch, losses: list[float], rouge: list[float] = ()) -> None:
        """The validations that follow measure these losses (and ROUGE-L values), in turn."""
        losses_left, rouge_left = iter(losses), iter(rouge)
        monkeypatch.setattr(self.validator, "losses", lambda stage, data: {"total": next(losses_left)})
        monkeypatch.setattr(self.validator, "rouge", lambda stage, data: {"rougeL": next(rouge_left)} if rouge else {})

    def run(self, state: LoopState, stage=LATENT_STAGE, data=None, budget_left: bool = True) -> bool:
        """One validation, one step after the last; the training objective it restores is a stand-in."""
        state.step += 1
        state.global_step += 1
        data = data or StageData(TokenRecords(1), TokenRecords(1), Collate(target_pad_id=0))
        return self.validator.run(stage, state, data, training=self.validator.model, frozen=[],
                                  budget_left=budget_left)


def fresh_state() -> LoopState:
    return LoopState(plan=[s.name for s in PLAN])


def test_early_stopping_ends_the_stage_after_patience_validations_without_improvement(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path, early_stopping_patience=2)
    harness.script(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.7])
    state = fresh_state()
    assert [harness.run(state) for _ in range(4)] == [False, False, False, True]
    assert state.early_stopped == ["pretrain_middle"] and state.evals_since_best == 2
    assert any("early stopping at step 4, 2 validations without a better loss" in m for m in harness.display.messages)


def test_a_better_validation_resets_the_patience_count(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path, early_stopping_patience=2)
    harness.script(monkeypatch, [1.0, 1.1, 0.9, 1.2, 0.8, 1.3])
    state = fresh_state()
    assert [harness.run(state) for _ in range(6)] == [False] * 6
    assert state.evals_since_best == 1 and state.early_stopped == []


def test_no_early_stop_without_budget_left_or_without_patience(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path, early_stopping_patience=1)
    harness.script(monkeypatch, [1.0, 2.0])
    state = fresh_state()
    assert not harness.run(state) and not harness.run(state, budget_left=False)  # the stage's last validation
    assert state.early_stopped == [] and state.evals_since_best == 1
    patient = Harness(model, tmp_path, early_stopping_patience=None)
    patient.script(monkeypatch, [1.0] + [2.0] * 5)
    assert not any(patient.run(fresh_state()) for _ in range(6))


def test_keeps_the_best_weights_and_their_scores(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path, best_filenames={PRETRAIN_BEST: "best_model_pretrain.pt"})
    harness.script(monkeypatch, [1.0, 0.8, 0.9, math.nan])
    state = fresh_state()
    for _ in range(4):
        harness.run(state)
    assert harness.saved == [("best_model_pretrain.pt", 1, "pretrain_middle"), ("best_model_pretrain.pt", 2, "pretrain_middle")]
    assert state.best_val == state.best["pretrain_middle"] == state.best_scores["pretrain_middle"] == 0.8
    assert state.evals_since_best == 2  # 0.9, and a NaN loss is no improvement either
    assert [m.losses["total"] for m in harness.recorded][:3] == [1.0, 0.8, 0.9]
    assert harness.validator.best_path(LATENT_STAGE) == tmp_path / "best_model_pretrain.pt"
    assert Harness(model, tmp_path).validator.best_path(LATENT_STAGE).name == "best_pretrain_middle.pt"


def test_rouge_l_picks_the_best_weights_of_a_token_stage_when_asked(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path, best_model_metric="rougeL", eval_rouge_samples=1)
    harness.script(monkeypatch, [1.0, 0.5, 0.4], rouge=[20.0, 10.0, 30.0])  # the loss improves each time
    state = fresh_state()
    for _ in range(3):
        harness.run(state, stage=TOKEN_STAGE)
    assert [step for _, step, _ in harness.saved] == [1, 3]  # the validations with a better ROUGE-L
    assert state.best_scores["pretrain_adapter"] == 30.0 and state.best["pretrain_adapter"] == 0.4
    assert harness.validator.metric(TOKEN_STAGE) == "rougeL" and harness.validator.metric(LATENT_STAGE) == "loss"


def test_without_validation_data_the_latest_weights_are_the_best(model, tmp_path):
    harness = Harness(model, tmp_path, early_stopping_patience=1)
    no_validation = StageData(TokenRecords(2), None, Collate(target_pad_id=0))
    state = fresh_state()
    assert not any(harness.run(state, data=no_validation) for _ in range(3))
    assert [step for _, step, _ in harness.saved] == [1, 2, 3] and harness.recorded == []
    assert state.evals_since_best == 0 and state.best == {}


def test_validation_is_due_every_eval_steps_and_at_the_stage_end(model, tmp_path):
    every_three = Harness(model, tmp_path, eval_steps=3).validator
    assert [s for s in range(1, 8) if every_three.is_due(s, total_steps=7)] == [3, 6, 7]
    assert not any(Harness(model, tmp_path).validator.is_due(s, total_steps=7) for s in range(1, 8))


def _training_modes(model):
    objective = StageObjective(model, TOKEN_STAGE, max_seq_len=16, max_target_len=16)
    frozen = frozen_subtrees(model)
    set_train_modes(objective, frozen)
    return objective, frozen


def test_a_validation_restores_the_train_modes(model, tmp_path):
    harness = Harness(model, tmp_path, eval_rouge_samples=2)
    objective, frozen = _training_modes(model)
    data = StageData(TokenRecords(4), TokenRecords(5, seed=1), Collate(target_pad_id=0))
    harness.validator.run(TOKEN_STAGE, fresh_state(), data, training=objective, frozen=frozen, budget_left=True)
    assert len(harness.recorded) == 1 and harness.recorded[0].extra == {"rouge": {"rougeL": 0.0}}
    assert len(harness.display.samples) == 1  # a token stage shows a greedy sample
    assert model.adapter.training and model.middle in frozen and not model.middle.training
    assert all(not m.training for module in frozen for m in module.modules())


def test_a_failed_validation_restores_the_train_modes_too(model, tmp_path, monkeypatch):
    harness = Harness(model, tmp_path)
    objective, frozen = _training_modes(model)

    def fails(stage, data):
        model.eval()  # as a real validation does before it fails
        raise RuntimeError("out of memory")

    monkeypatch.setattr(harness.validator, "losses", fails)
    data = StageData(TokenRecords(1), TokenRecords(1), Collate(target_pad_id=0))
    with pytest.raises(RuntimeError, match="out of memory"):
        harness.validator.run(TOKEN_STAGE, fresh_state(), data, training=objective, frozen=frozen, budget_left=True)
    assert model.adapter.training and not model.middle.training


def test_rouge_samples_need_a_text_scorer(model, tmp_path):
    with pytest.raises(ValueError, match="text_scorer"):
        Validator(model, TrainSettings(learning_rate=0.0, eval_rouge_samples=2), Accelerator(cpu=True),
                  display=NullDisplay(), record=print, save_model=print, sharded=False)
