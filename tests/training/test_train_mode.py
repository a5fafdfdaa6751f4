"""`--mode train` on the tiny preset with small caps: the whole pipeline, stop, resume auto, hand-off file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

import latentbridge

from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run
from latentbridge.recipe import checkpoint_fingerprint, plan
from latentbridge.training.checkpoint import find_latest, load_model_file
from tests.factories import train_config


def test_train_stop_then_resume_auto_then_handoff(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=5).exit_code == 130
    assert find_latest(c.checkpoint_dir).name == "step-000000005"
    assert run(c, ModeOptions(resume="auto")).exit_code == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "Training done (16 steps)" in out  # 4 stages x 4 batches of 8
    handoff = load_model_file(Path(c.checkpoint_dir) / c.handoff_best_model_filename, checkpoint_fingerprint(c))
    assert handoff.stage == "finetune_adapter" and handoff.config["latent_dim"] == c.latent_dim
    for name in (c.pretrain_best_model_filename, c.finetune_best_model_filename):
        assert (Path(c.checkpoint_dir) / name).exists()
    stages = {json.loads(line)["stage"] for line in (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()}
    assert stages == {"pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter"}
    plots = sorted(p.name for p in (Path(c.output_dir) / "plots").iterdir())
    assert plots == ["1_pretrain_middle.png", "2_pretrain_adapter.png", "3_finetune_middle.png", "4_finetune_adapter.png"]


def test_lora_run_trains_saves_only_what_trains_and_generates(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path, decoder_unfrozen_layers=0, decoder_lora_rank=4, decoder_lora_alpha=8.0)
    assert [sorted(s.trains) for s in plan(c)][1] == ["adapter", "decoder"]
    assert run(c, ModeOptions()).exit_code == 0
    said = re.search(r"pretrain_adapter: ([\d,]+) trainable parameters \(adapter, decoder\)", capsys.readouterr().out)
    handoff = load_model_file(Path(c.checkpoint_dir) / c.handoff_best_model_filename, checkpoint_fingerprint(c))
    decoder_keys = [k for k in handoff.model if k.startswith("decoder.")]
    assert decoder_keys and all(".lora_A." in k or ".lora_B." in k for k in decoder_keys)
    assert any(float(handoff.model[k].abs().sum()) > 0 for k in decoder_keys if ".lora_B." in k)  # the adapters trained
    lines = [json.loads(line) for line in (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()]
    token = [line["loss"] for line in lines if line["split"] == "train" and line["stage"].endswith("adapter")]
    assert token[-1] < token[0]
    model = latentbridge.load(c.checkpoint_dir)
    assert model.config.decoder_lora_rank == 4
    trained = sum(p.numel() for n, p in model.model.named_parameters() if n.startswith("adapter.") or ".lora_" in n)
    assert said and int(said.group(1).replace(",", "")) == trained
    assert all(isinstance(text, str) for text in model.generate(["Anna: lunch at 1? Ben: sure"], max_generation_length=8))
    summary = json.loads((Path(c.output_dir) / "summary.json").read_text())
    assert summary["trainable_parameters"]["pretrain_adapter"] > summary["trainable_parameters"]["pretrain_middle"] > 0


def test_lora_enters_the_checkpoint_fingerprint_only_when_on(tiny_root, tmp_path):
    plain = checkpoint_fingerprint(train_config(tiny_root, tmp_path))
    assert "decoder_lora_rank" not in plain.fields  # checkpoints written before LoRA keep their digest
    lora = checkpoint_fingerprint(train_config(tiny_root, tmp_path, decoder_unfrozen_layers=0, decoder_lora_rank=4))
    assert lora.fields["decoder_lora_rank"] == 4 and lora.digest != plain.digest


def test_resume_refuses_an_incompatible_checkpoint(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=1).exit_code == 130
    with pytest.raises(UserError, match="incompatible model configuration.*latent_dim"):
        run(c.replace(latent_dim=32), ModeOptions(resume="auto"))


def test_fresh_run_refuses_a_checkpoint_dir_of_an_earlier_run(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=3).exit_code == 130
    with pytest.raises(UserError, match=r"already holds step checkpoints.*step-000000003.*--resume auto"):
        run(c, ModeOptions())


def test_mlp_middle_plans_builds_and_trains_through_the_pipeline(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path, middle_architecture="mlp", middle_layers=2, middle_hidden_dim=48)
    assert [s.name for s in plan(c)] == ["pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter"]
    assert run(c, ModeOptions()).exit_code == 0
    assert "Training done (16 steps)" in capsys.readouterr().out
    handoff = load_model_file(Path(c.checkpoint_dir) / c.handoff_best_model_filename, checkpoint_fingerprint(c))
    assert handoff.model["middle.ffns.1.up.weight"].shape == (48, c.latent_seq_len * c.latent_dim)
    lines = [json.loads(line) for line in (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()]
    middle_losses = [line["loss"] for line in lines if line["stage"] == "finetune_middle" and line["split"] == "train"]
    assert middle_losses and all(math.isfinite(loss) for loss in middle_losses)


def test_only_an_mlp_middle_enters_the_checkpoint_fingerprint(tiny_root, tmp_path):
    transformer = checkpoint_fingerprint(train_config(tiny_root, tmp_path))
    assert "middle_architecture" not in transformer.fields  # checkpoints written before the field keep their digest
    mlp = checkpoint_fingerprint(train_config(tiny_root, tmp_path, middle_architecture="mlp"))
    assert mlp.fields["middle_architecture"] == "mlp" and mlp.digest != transformer.digest
    assert checkpoint_fingerprint(train_config(tiny_root, tmp_path, middle_architecture="mlp", middle_layers=2)).digest != mlp.digest


def test_resume_refuses_a_checkpoint_of_the_other_middle(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=1).exit_code == 130
    with pytest.raises(UserError, match="incompatible model configuration.*middle_architecture: checkpoint None, now 'mlp'"):
        run(c.replace(middle_architecture="mlp"), ModeOptions(resume="auto"))


def test_middle_stages_train_from_live_latents(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path, cache_use_embeddings_for_training=False, cache_store_text=True,
               preprocess_format="npy")
    assert [s.name for s in plan(c) if not s.uses_cache] == ["pretrain_middle", "finetune_middle"]
    assert run(c, ModeOptions()).exit_code == 0
    assert "Training done (16 steps)" in capsys.readouterr().out


def test_a_stopped_run_says_so_once(tiny_root, tmp_path, capsys):
    """Ctrl-C and stop_after_steps end the same way: the trainer checkpoints, the mode says how to continue."""
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=2).exit_code == 130
    out = capsys.readouterr().out.lower()
    assert out.count("stopped at step") == 1 and "continue with --resume auto" in out


TIMING = ("time", "samples_per_s", "tokens_per_s", "memory_gb")  # how fast, not what was computed


def record(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def test_a_resume_after_a_kill_continues_metrics_and_summary_exactly(tiny_root, tmp_path):
    """A killed run has logged steps after its last checkpoint; resuming from that checkpoint cuts them and logs
    them again, so metrics.jsonl and summary.json read like an uninterrupted run's (issue 20: duplicate lines,
    trainable_parameters of the resumed stages only)."""
    whole = train_config(tiny_root, tmp_path / "whole")
    assert run(whole, ModeOptions()).exit_code == 0
    killed = train_config(tiny_root, tmp_path / "killed")
    assert run(killed, ModeOptions(), stop_after_steps=10).exit_code == 130  # checkpoints at steps 6, 9 and 10
    # stage 3, as if killed at step 10 after a save at 9: between two metric lines (log_every 2)
    checkpoint = Path(killed.checkpoint_dir) / "step-000000009"
    assert run(killed, ModeOptions(resume=str(checkpoint))).exit_code == 0
    assert record(Path(killed.output_dir) / "metrics.jsonl") == record(Path(whole.output_dir) / "metrics.jsonl")
    summaries = [json.loads((Path(c.output_dir) / "summary.json").read_text()) for c in (whole, killed)]
    for summary in summaries:
        summary["last_checkpoint"] = Path(summary["last_checkpoint"]).name
    assert summaries[0] == summaries[1] and len(summaries[1]["trainable_parameters"]) == 4
