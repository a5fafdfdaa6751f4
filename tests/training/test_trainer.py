"""The training loop on a tiny model and fake cached data: exact resume, Ctrl-C, files it writes."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from latentbridge.assets import ensure_tiny_assets
from latentbridge.data.loader import Collate
from latentbridge.training.checkpoint import config_fingerprint, find_latest, load_checkpoint, load_model_file
from latentbridge.training.stages import BUDGET_KEYS, StageBudget, plan_stages
from latentbridge.training.trainer import StageData, Trainer, TrainSettings
from tests.factories import TINY_DIM, TINY_K, make_model

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


def stages():
    budgets = {k: StageBudget(epochs=2, batch_size=4) for k in BUDGET_KEYS}
    budgets["pretrain_adapter"] = StageBudget(epochs=1, batch_size=4)
    return plan_stages(pipeline_mode="two_stage_scientific", training_phase="normal", run_pretraining=True,
                       run_finetuning=False, adapter_pretrain_use_middle=False, freeze_encoder_compression=True,
                       train_decoder_layers=False, budgets=budgets)


def data_for(stage) -> StageData:
    return StageData(FakeRecords(18, seed=1), FakeRecords(6, seed=2), Collate(target_pad_id=0))


def settings(tmp_path, **kw) -> TrainSettings:
    kw.setdefault("checkpoint_dir", tmp_path / "ckpt")
    return TrainSettings(learning_rate=1e-2, warmup_steps=2, gradient_accumulation_steps=2, save_every=2, log_every=1,
                         run_dir=tmp_path / "run", seed=3, async_checkpointing=True, sample_max_tokens=4, **kw)


def build(assets, tmp_path, data=data_for, **kw) -> Trainer:
    model = make_model(assets, seed=0, middle={"dropout": 0.1}, adapter={"dropout": 0.1})
    return Trainer(model, stages(), data, settings(tmp_path, **kw), fingerprint=FP, config={"latent_dim": TINY_DIM})


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.trainable_state_dict().items()}


@pytest.mark.parametrize("stop_after", [2, 7])  # mid-epoch in stage 1; mid-epoch in stage 2
def test_resume_matches_uninterrupted_training(assets, tmp_path, stop_after):
    torch.manual_seed(0)
    reference = build(assets, tmp_path / "a")
    done = reference.train()
    assert not done.interrupted and done.state.global_step == 9  # 3 windows per epoch (2+2+1 batches): 2 epochs + 1

    torch.manual_seed(0)
    first = build(assets, tmp_path / "b", stop_after_steps=stop_after)
    assert first.train().interrupted
    latest = find_latest(tmp_path / "b" / "ckpt")
    assert latest.name == f"step-{stop_after:09d}"

    torch.manual_seed(123)  # the resumed process starts from a different RNG state: the checkpoint restores it
    resumed = build(assets, tmp_path / "b")
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
    from latentbridge.training.trainer import frozen_subtrees

    model = make_model(assets, seed=0)
    set_trainable(model, {"adapter"})
    frozen = frozen_subtrees(model)
    assert model.middle in frozen and model.adapter not in frozen
    assert all(not any(p.requires_grad for p in m.parameters()) for m in frozen)
