"""A training process killed with SIGKILL and resumed with --resume auto ends with the same weights, the same
metrics.jsonl (timings aside) and the same summary.json as a run that was never interrupted (CPU, one thread,
fixed seed). Slow: three training processes, ~25 s; the default run keeps the in-process stop/resume tests
(test_train_mode.py, test_trainer.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from latentbridge.config_sources import write_config_file
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import find_latest, load_model_file
from tests.factories import train_config

ROOT = Path(__file__).resolve().parents[2]


def train(config_file: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", "--mode", "train", "--config", str(config_file), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def kill_after_first_checkpoint(process: subprocess.Popen, checkpoint_dir: Path) -> None:
    deadline = time.monotonic() + 240
    while find_latest(checkpoint_dir) is None:
        assert process.poll() is None, f"training ended before its first checkpoint: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "training finished before it could be killed"


@pytest.mark.slow
def test_kill9_then_resume_matches_an_uninterrupted_run(tiny_root, tmp_path):
    settings = dict(max_train_samples=96, pretrain_middle_max_samples=96, pretrain_adapter_max_samples=96,
                    save_every=5, preprocess_cache_dir=str(tmp_path / "cache"),
                    # a schedule with state beyond the step count: the resumed run must continue it exactly
                    lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.1, warmup_ratio=0.2, warmup_steps=0)
    whole = train_config(tiny_root, tmp_path / "whole").replace(**settings)
    killed = train_config(tiny_root, tmp_path / "killed").replace(**settings)
    for c, name in ((whole, "whole.yaml"), (killed, "killed.yaml")):
        write_config_file(c, str(tmp_path / name))

    assert train(tmp_path / "whole.yaml").wait(timeout=300) == 0
    victim = train(tmp_path / "killed.yaml")
    kill_after_first_checkpoint(victim, Path(killed.checkpoint_dir))
    resumed = train(tmp_path / "killed.yaml", "--resume", "auto")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    reference = load_model_file(Path(whole.checkpoint_dir) / whole.handoff_best_model_filename,
                                checkpoint_fingerprint(whole)).model
    result = load_model_file(Path(killed.checkpoint_dir) / killed.handoff_best_model_filename,
                             checkpoint_fingerprint(killed)).model
    assert reference.keys() == result.keys()
    assert all(torch.equal(reference[k], result[k]) for k in reference)
    assert metric_lines(whole) == metric_lines(killed)  # no step logged twice (issue 20)
    assert summary(whole) == summary(killed)  # every stage's trainable parameters, too


TIMING = ("time", "samples_per_s", "tokens_per_s", "memory_gb")  # how fast, not what was computed


def metric_lines(c) -> list[dict]:
    lines = (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def summary(c) -> dict:
    data = json.loads((Path(c.output_dir) / "summary.json").read_text())
    data["last_checkpoint"] = Path(data["last_checkpoint"]).name
    return data
