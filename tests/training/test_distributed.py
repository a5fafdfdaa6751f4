"""The tiny pipeline under torchrun on 2 CPU processes (gloo): it trains, and only rank 0 writes and prints.
Slow: two processes under torchrun, ~20 s; tests/test_main.py keeps one process end to end in the default run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from latentbridge.config_sources import write_config_file
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import load_model_file
from tests.factories import train_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_train_and_only_rank0_reports(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    write_config_file(c, str(tmp_path / "run.yaml"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "main.py", "--mode", "train", "--config", str(tmp_path / "run.yaml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # 32 examples, batch 8, split over 2 ranks: 2 steps a stage, 4 stages
    assert run.stdout.count("Training done (8 steps)") == 1
    lines = [json.loads(line) for line in (Path(c.output_dir) / "metrics.jsonl").read_text().splitlines()]
    train_steps = Counter(m["global_step"] for m in lines if m.get("split", "train") == "train" and "global_step" in m)
    assert train_steps and max(train_steps.values()) == 1  # one writer: no step logged twice
    handoff = load_model_file(Path(c.checkpoint_dir) / c.handoff_best_model_filename, checkpoint_fingerprint(c))
    assert handoff.stage == "finetune_adapter"
