"""The training loop on a tiny model and fake cached data: exact resume, Ctrl-C, files it writes."""

from __future__ import annotations

import gc
import json
import os
import signal
import weakref

from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import Dataset

from latentbridge.assets import ensure_tiny_assets
from latentbridge.data.loader import Collate
from latentbridge.evaluation.rouge import rouge_scores
from latentbridge.models.specs import LoraSpec
from latentbridge.training.checkpoint import config_fingerprint, find_latest, load_checkpoint, load_model_file
from latentbridge.training.stages import BUDGET_KEYS, StageBudget, plan_stages
from latentbridge.training.tracking import project_configuration, start_trackers
from latentbridge.training.trainer import StageData, Trainer, TrainSettings, frozen_subtrees
from tests.factories import TINY_DIM, TINY_K, make_model, read_wandb_records

FP = config_fingerprint({"latent_dim": TINY_DIM})


@pytest.fixture(scope="session")
def assets(tiny_root):
    return ensure_tiny_assets(tiny_root, seed=0)  # already built: returns the paths


class FakeRecords(Dataset):
    """Cache-shaped records: latents (K, D), target ids of the tiny decoder's vocabulary."""

    def __init__(self, n: int, seed: int, vocab: int = 200):
        rng = np.random.default_rng(seed)
        self.rows = []
        for i in range(n):
            length = int(rng.integers(3, 9))
            ids = rng.integers(5, vocab, size=length)
            self.rows.append({"input_latents": rng.standard_normal((TINY_K, TINY_DIM)).astype(np.float32),
                              "target_latents": rng.standard_normal((int(rng.integers(1, TINY_K + 1)), TINY_DIM)).astype(np.float32),
                              "target_ids": ids, "target_attention_mask": np.ones(length, dtype=np.int64)})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {**self.rows[i], "index": i}


def stages(train_decoder: bool = False, adapter_epochs: int = 1):
    budgets = {k: StageBudget(epochs=2, batch_size=4) for k in BUDGET_KEYS}
    budgets["pretrain_adapter"] = StageBudget(epochs=adapter_epochs, batch_size=4)
    return plan_stages(pipeline_mode="two_stage_scientific", training_phase="normal", run_pretraining=True,
                       run_finetuning=False, adapter_pretrain_use_middle=False, freeze_encoder_compression=True,
                       train_decoder_layers=train_decoder, budgets=budgets)


def data_for(stage) -> StageData:
    return StageData(FakeRecords(18, seed=1), FakeRecords(6, seed=2), Collate(target_pad_id=0))


def settings(tmp_path, **kw) -> TrainSettings:
    kw = {"checkpoint_dir": tmp_path / "ckpt", "warmup_steps": 2, "eval_max_new_tokens": 4, "learning_rate": 1e-2, **kw}
    return TrainSettings(gradient_accumulation_steps=2, save_every=2, log_every=1,
                         run_dir=tmp_path / "run", seed=3, async_checkpointing=True, sample_max_tokens=4, **kw)


def build(assets, tmp_path, data=data_for, lora: bool = False, adapter_epochs: int = 1, accelerator=None,
          **kw) -> Trainer:
    decoder = {"lora": LoraSpec(rank=2, dropout=0.1), "unfrozen_layers": 0} if lora else {}
    model = make_model(assets, seed=0, middle={"dropout": 0.1}, adapter={"dropout": 0.1}, decoder=decoder)
    scorer = (lambda out, ref: {k: 100 * v for k, v in rouge_scores(out, ref).as_dict().items()})
    return Trainer(model, stages(lora, adapter_epochs), data, settings(tmp_path, **kw), fingerprint=FP,
                   config={"latent_dim": TINY_DIM}, accelerator=accelerator, text_scorer=scorer)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.trainable_state_dict().items()}


SCHEDULED = dict(lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.1, warmup_ratio=0.3, warmup_steps=0)


@pytest.mark.parametrize("stop_after,kw", [
    (2, {}),  # mid-epoch in stage 1
    (7, {}),  # mid-epoch in stage 2
    (5, SCHEDULED),  # a cosine schedule with a floor and a warmup ratio: the schedule resumes where it was
    (7, {**SCHEDULED, "lora": True, "eval_steps": 1, "eval_rouge_samples": 2, "best_model_metric": "rougeL"}),
])
def test_resume_matches_uninterrupted_training(assets, tmp_path, stop_after, kw):
    torch.manual_seed(0)
    reference = build(assets, tmp_path / "a", **kw)
    done = reference.train()
    assert not done.interrupted and done.state.global_step == 9  # 3 windows per epoch (2+2+1 batches): 2 epochs + 1

    torch.manual_seed(0)
    first = build(assets, tmp_path / "b", stop_after_steps=stop_after, **kw)
    assert first.train().interrupted
    latest = find_latest(tmp_path / "b" / "ckpt")
    assert latest.name == f"step-{stop_after:09d}"

    torch.manual_seed(123)  # the resumed process starts from a different RNG state: the checkpoint restores it
    resumed = build(assets, tmp_path / "b", **kw)
    result = resumed.train(load_checkpoint(latest, FP))
    assert not result.interrupted and result.state.global_step == 9
    ref, got = weights(reference), weights(resumed)
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.equal(ref[name], got[name]), name


def test_writes_metrics_best_and_handoff_files(assets, tmp_path):
    result = build(assets, tmp_path).train()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["split"] == "train"]
    assert {"stage", "epoch", "step", "loss", "losses", "lr", "grad_norm", "samples_per_s", "memory_gb"} <= set(train[0])
    assert {line["split"] for line in lines} == {"train", "validation"}
    assert "contrastive" in train[0]["losses"] and "ce" in train[-1]["losses"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["global_step"] == 9 and not summary["interrupted"]
    handoff = load_model_file(result.handoff, FP)
    assert handoff.stage == "pretrain_adapter" and handoff.config == {"latent_dim": TINY_DIM}
    assert (tmp_path / "ckpt" / "best_model_pretrain.pt").exists() is False  # no filenames given: stage-named files
    assert (tmp_path / "ckpt" / "best_pretrain_adapter.pt").exists()


def metric_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_eval_steps_validate_every_n_steps_and_at_each_stage_end(assets, tmp_path):
    build(assets, tmp_path, eval_steps=2, eval_rouge_samples=3).train()
    validations = [line for line in metric_lines(tmp_path / "run") if line["split"] == "validation"]
    # stage 1: 2 epochs x 3 steps, stage 2: 1 epoch x 3 steps
    assert [(v["stage"], v["step"]) for v in validations] == [
        ("pretrain_middle", 2), ("pretrain_middle", 4), ("pretrain_middle", 6), ("pretrain_adapter", 2),
        ("pretrain_adapter", 3)]
    adapter = [v for v in validations if v["stage"] == "pretrain_adapter"]
    assert all(set(v["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"} for v in adapter)
    assert all(0 <= v["rouge"]["rougeL"] <= 100 for v in adapter)
    assert not any("rouge" in v for v in validations if v["stage"] == "pretrain_middle")  # latent stage: no text


def test_early_stopping_ends_a_stage_after_patience_validations_without_improvement(assets, tmp_path):
    # learning rate 0: the weights, so the validation loss, never change after the first validation
    result = build(assets, tmp_path, learning_rate=0.0, warmup_steps=0, eval_steps=1, early_stopping_patience=2,
                   adapter_epochs=2).train()
    assert result.state.global_step == 6  # each stage stops at its 3rd of 6 steps
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["early_stopped"] == ["pretrain_middle", "pretrain_adapter"]
    steps = [(v["stage"], v["step"]) for v in metric_lines(tmp_path / "run") if v["split"] == "validation"]
    assert steps == [(s, i) for s in ("pretrain_middle", "pretrain_adapter") for i in (1, 2, 3)]


def test_best_model_metric_rouge_keeps_the_validation_with_the_best_rouge(assets, tmp_path):
    build(assets, tmp_path, eval_steps=1, eval_rouge_samples=4, best_model_metric="rougeL", adapter_epochs=2).train()
    validations = [v for v in metric_lines(tmp_path / "run") if v["split"] == "validation"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best_scores"]["pretrain_adapter"] == max(v["rouge"]["rougeL"] for v in validations
                                                             if v["stage"] == "pretrain_adapter")
    # the latent stage measures no ROUGE: its loss still picks its best weights
    assert summary["best_scores"]["pretrain_middle"] == min(v["loss"] for v in validations
                                                            if v["stage"] == "pretrain_middle")


def test_modes_set_per_stage_train_exactly_as_modes_set_every_step(assets, tmp_path):
    """The loop sets train/eval modes once per stage and after each validation (issue 13), not every step: with
    dropout on in the middle and adapter and validations mid-epoch, the same losses and weights as before."""
    torch.manual_seed(0)
    once = build(assets, tmp_path / "once", eval_steps=2, eval_rouge_samples=2)
    once.train()
    torch.manual_seed(0)
    every = build(assets, tmp_path / "every", eval_steps=2, eval_rouge_samples=2)
    step = every.train_step

    def modes_then_step(objective, *args):
        objective.train()
        for module in frozen_subtrees(every.model):
            module.eval()
        return step(objective, *args)

    every.train_step = modes_then_step
    every.train()
    losses = [[line["loss"] for line in metric_lines(tmp_path / name / "run")] for name in ("once", "every")]
    assert losses[0] == losses[1] and len(losses[0]) > 9
    ref, got = weights(every), weights(once)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_and_stops_cleanly(assets, tmp_path, sig):
    before = signal.getsignal(signal.SIGTERM)

    def interrupting(stage):
        os.kill(os.getpid(), sig)  # as if the user pressed Ctrl-C (or the cluster preempted us) during the stage
        return data_for(stage)

    result = build(assets, tmp_path, data=interrupting).train()
    assert result.interrupted and result.state.global_step == 1
    ckpt = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    assert ckpt.step == 1 and ckpt.loop["batch_in_epoch"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert signal.getsignal(signal.SIGTERM) == before


def test_frozen_parts_train_in_eval_mode(assets):
    from latentbridge.models.bridge import set_trainable

    model = make_model(assets, seed=0)
    set_trainable(model, {"adapter"})
    frozen = frozen_subtrees(model)
    assert model.middle in frozen and model.adapter not in frozen
    assert all(not any(p.requires_grad for p in m.parameters()) for m in frozen)


# ------------------------------------------------------------------ experiment trackers, read back offline

TRACKED_CONFIG = {"latent_dim": 32, "run_name": None, "learning_rate": 0.01}


def train_with(assets, tmp_path: Path, tracker: str) -> list[dict]:
    """Train the test_trainer pipeline with `tracker`; the metric lines of metrics.jsonl."""
    run_dir = tmp_path / "run"
    accelerator = Accelerator(cpu=True, log_with=[tracker], project_config=project_configuration(run_dir))
    start_trackers(accelerator, project="proj", run_name="first", run_dir=run_dir, config=TRACKED_CONFIG)
    build(assets, tmp_path, accelerator=accelerator, eval_rouge_samples=2).train()
    accelerator.end_training()
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def jsonl_series(lines: list[dict], split: str, stage: str, key: str) -> list[tuple[int, float]]:
    """(global step, value) of `key` in the metric lines of one split and stage."""
    return [(line["global_step"], line[key]) for line in lines
            if line["split"] == split and line["stage"] == stage and line.get(key) is not None]


def test_tensorboard_event_files_hold_every_metric_line(assets, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    lines = train_with(assets, tmp_path, "tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "proj"))
    events.Reload()
    for split, stage, key, tag in [("train", "pretrain_middle", "loss", "loss/total"),
                                   ("train", "pretrain_adapter", "lr", "lr"),
                                   ("validation", "pretrain_adapter", "loss", "loss/total")]:
        logged = [(e.step, e.value) for e in events.Scalars(f"{split}/{stage}/{tag}")]
        assert dict(logged) == pytest.approx(dict(jsonl_series(lines, split, stage, key)), rel=1e-6)
    rouge = [e.value for e in events.Scalars("validation/pretrain_adapter/rougeL")]
    assert rouge == pytest.approx([line["rouge"]["rougeL"] for line in lines
                                   if line["split"] == "validation" and "rouge" in line], rel=1e-6)
    hparams = list((tmp_path / "run" / "tensorboard" / "proj").glob("*/hparams.yml"))
    assert hparams and "learning_rate: 0.01" in hparams[0].read_text()


def test_wandb_offline_run_folder_holds_the_config_and_history(assets, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    lines = train_with(assets, tmp_path, "wandb")
    wandb.teardown()  # finish() can return before wandb's core process has written the run file; teardown waits
    (run_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    history, config, names = [], {}, []
    for data in read_wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "run":
            names.append((record.run.project, record.run.display_name))
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    assert ("proj", "first") in names
    assert config["learning_rate"] == 0.01 and config["run_name"] == "none"
    logged = [(h["_step"], h["train/pretrain_middle/loss/total"]) for h in history
              if "train/pretrain_middle/loss/total" in h]
    assert dict(logged) == pytest.approx(dict(jsonl_series(lines, "train", "pretrain_middle", "loss")), rel=1e-6)


def test_a_trained_trainer_is_freed_without_the_garbage_collector(assets, tmp_path):
    """No reference cycle runs through the trainer's parts (validator, record, trained tensors): dropping a trainer
    frees its model, and on a GPU its memory, at once rather than whenever the garbage collector next runs."""
    trainer = build(assets, tmp_path, eval_steps=2, eval_rouge_samples=2)
    trainer.train()
    gone = weakref.ref(trainer)
    gc.disable()
    try:
        del trainer
        assert gone() is None
    finally:
        gc.enable()
