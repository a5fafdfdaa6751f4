"""The README's main job, `python main.py --mode train --preset tiny`, in a real process at small caps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from latentbridge.config import STAGES, preset_config
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import load_model_file
from tests.factories import link_tiny_assets

MAIN = Path(__file__).resolve().parents[1] / "main.py"
CAPS = ["--max-train-samples", "32", "--pretrain-middle-max-samples", "32", "--pretrain-adapter-max-samples", "32",
        "--batch-size", "8", "--pretrain-middle-epochs", "1", "--pretrain-adapter-epochs", "1",
        "--finetune-middle-epochs", "1", "--finetune-adapter-epochs", "1"]


def test_train_the_tiny_preset_from_the_command_line(tiny_root, tmp_path, monkeypatch):
    """In a fresh folder whose cache/tiny holds the session's tiny assets (the preset builds them there)."""
    link_tiny_assets(tmp_path, tiny_root)
    run = subprocess.run([sys.executable, str(MAIN), "--mode", "train", "--preset", "tiny", *CAPS], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Training done (16 steps)" in run.stdout  # 4 stages x 4 batches of 8
    monkeypatch.chdir(tmp_path)  # the preset's paths are relative to where it ran
    config = preset_config("tiny")
    run_folder = Path(config.checkpoint_dir) / "version_0"  # the preset's folders: a run folder of its own
    assert (Path(config.checkpoint_dir) / "latest").read_text().strip() == "version_0"
    handoff = load_model_file(run_folder / config.handoff_best_model_filename, checkpoint_fingerprint(config))
    assert handoff.stage == "finetune_adapter" and handoff.config["max_train_samples"] == 32
    metrics = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert {m["stage"] for m in metrics} == set(STAGES)
    assert json.loads((run_folder / "summary.json").read_text())
