"""`--mode train` on the tiny preset with small caps: the whole pipeline, stop, resume auto, hand-off file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import find_latest, load_model_file
from tests.factories import train_config


def test_train_stop_then_resume_auto_then_handoff(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=5) == 130
    assert find_latest(c.checkpoint_dir).name == "step-000000005"
    assert run(c, ModeOptions(resume="auto")) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "Training done (16 steps)" in out  # 4 stages x 4 batches of 8
    handoff = load_model_file(Path(c.checkpoint_dir) / c.handoff_best_model_filename, checkpoint_fingerprint(c))
    assert handoff.stage == "finetune_adapter" and handoff.config["latent_dim"] == c.latent_dim
    for name in (c.pretrain_best_model_filename, c.finetune_best_model_filename):
        assert (Path(c.checkpoint_dir) / name).exists()
    stages = {json.loads(line)["stage"] for line in (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()}
    assert stages == {"pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter"}


def test_resume_refuses_an_incompatible_checkpoint(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=1) == 130
    with pytest.raises(UserError, match="incompatible model configuration.*latent_dim"):
        run(c.replace(latent_dim=32), ModeOptions(resume="auto"))


def test_fresh_run_refuses_a_checkpoint_dir_of_an_earlier_run(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=3) == 130
    with pytest.raises(UserError, match=r"already holds step checkpoints.*step-000000003.*--resume auto"):
        run(c, ModeOptions())
