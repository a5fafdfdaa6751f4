"""plan_stages for every pipeline mode and training phase."""

from __future__ import annotations

import pytest

from latentbridge.errors import UserError
from latentbridge.training.stages import BUDGET_KEYS, Stage, StageBudget, plan_stages


def plan(**kw):
    args = dict(pipeline_mode="two_stage_scientific", training_phase="normal", run_pretraining=True, run_finetuning=True,
                adapter_pretrain_use_middle=False, freeze_encoder_compression=True, train_decoder_layers=False,
                budgets={k: StageBudget(epochs=2, batch_size=8) for k in BUDGET_KEYS})
    args.update(kw)
    return plan_stages(**args)


def summary(stages):
    return [(s.name, tuple(sorted(s.trains)), s.collection, s.objective, s.uses_middle, s.uses_cache) for s in stages]


def test_normal_two_stage_plan_is_the_four_stages():
    assert summary(plan()) == [
        ("pretrain_middle", ("middle",), "pretrain", "latent", True, True),
        ("pretrain_adapter", ("adapter",), "pretrain", "tokens", False, True),
        ("finetune_middle", ("middle",), "dialogue", "latent", True, True),
        ("finetune_adapter", ("adapter",), "dialogue", "tokens", True, True),
    ]
    assert [s.best_filename_field for s in plan()] == ["pretrain_best_model_filename"] * 2 + ["finetune_best_model_filename"] * 2


def test_pretraining_or_finetuning_only():
    assert [s.name for s in plan(run_finetuning=False)] == ["pretrain_middle", "pretrain_adapter"]
    assert [s.name for s in plan(run_pretraining=False)] == ["finetune_middle", "finetune_adapter"]


def test_adapter_pretrain_use_middle_and_decoder_layers():
    stage = plan(adapter_pretrain_use_middle=True, train_decoder_layers=True)[1]
    assert stage.uses_middle and stage.trains == {"adapter", "decoder"}


def test_unfrozen_compressor_trains_live_in_stage4():
    stage = plan(freeze_encoder_compression=False)[3]
    assert stage.trains == {"adapter", "compressor"} and not stage.uses_cache


def test_without_cached_latents_the_middle_stages_encode_live():
    assert [(s.name, s.uses_cache) for s in plan(latent_stages_use_cache=False)] == [
        ("pretrain_middle", False), ("pretrain_adapter", True), ("finetune_middle", False), ("finetune_adapter", True)]
    assert [s.uses_cache for s in plan(training_phase="phase3", latent_stages_use_cache=False)] == [False, False]


def test_phase1_aligns_the_decoder_only():
    assert summary(plan(training_phase="phase1")) == [
        ("pretrain_adapter", ("adapter",), "pretrain", "tokens", False, True),
        ("finetune_adapter", ("adapter",), "dialogue", "tokens", False, True),
    ]


def test_phase2_trains_the_encoder():
    assert summary(plan(training_phase="phase2")) == [
        ("train_encoder", ("adapter", "compressor", "encoder"), "dialogue", "tokens", False, False)]


def test_phase3_trains_the_middle_only():
    assert [s.name for s in plan(training_phase="phase3")] == ["pretrain_middle", "finetune_middle"]
    assert [s.name for s in plan(training_phase="phase3", run_pretraining=False)] == ["finetune_middle"]


def test_end_to_end_mode_is_one_stage():
    assert summary(plan(pipeline_mode="end_to_end")) == [
        ("end_to_end", ("adapter", "compressor", "middle"), "dialogue", "tokens", True, False)]
    assert [s.name for s in plan(pipeline_mode="end_to_end", training_phase="phase3")] == ["pretrain_middle", "finetune_middle"]


def test_budgets_reach_the_stages_and_zero_epochs_skip():
    budgets = {k: StageBudget(epochs=1, batch_size=4) for k in BUDGET_KEYS}
    budgets["pretrain_middle"] = StageBudget(epochs=3, batch_size=16, max_samples=100, dataset_caps=(("wikitext", 50),))
    budgets["finetune_middle"] = StageBudget(epochs=0, batch_size=4)
    stages = plan(budgets=budgets)
    assert [s.name for s in stages] == ["pretrain_middle", "pretrain_adapter", "finetune_adapter"]
    assert (stages[0].epochs, stages[0].batch_size, stages[0].max_samples, stages[0].dataset_caps) == (3, 16, 100, (("wikitext", 50),))


def test_empty_plan_is_a_user_error():
    with pytest.raises(UserError, match="run_pretraining and run_finetuning are both off"):
        plan(run_pretraining=False, run_finetuning=False)
    with pytest.raises(UserError, match="0 epochs"):
        plan(training_phase="phase2", budgets={"train_encoder": StageBudget(0, 8)})


def test_stage_validates_itself():
    with pytest.raises(ValueError, match="latent objective trains exactly the middle"):
        Stage("x", frozenset({"middle", "adapter"}), "pretrain", "latent", True, "pretrain_best_model_filename", 1, 1)
    with pytest.raises(ValueError, match="trains"):
        Stage("x", frozenset({"gpu"}), "pretrain", "tokens", False, "pretrain_best_model_filename", 1, 1)
