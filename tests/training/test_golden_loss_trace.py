"""The golden loss trace (STYLE.md habit 10): the tiny preset with seed 0 and one torch thread, logging every
step, trains 20 steps a stage; the first 20 training losses of each stage must match tests/golden/loss_trace.json,
so a change that alters training numerically fails here, loudly, instead of drifting quietly.

The trace is regenerated only on purpose, when a change is meant to alter the numbers:

    UPDATE_GOLDEN=1 python -m pytest tests/training/test_golden_loss_trace.py

then commit tests/golden/loss_trace.json with a note in the commit saying why the losses changed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from latentbridge.config import STAGES
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run
from tests.factories import assets_config

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "loss_trace.json"
REGENERATE = "UPDATE_GOLDEN=1 python -m pytest tests/training/test_golden_loss_trace.py"
STEPS = 20  # logged losses compared per stage
# 80 examples in batches of 4, one epoch a stage: 20 steps in each of the four stages, every one logged
SETTINGS = {"seed": 0, "torch_num_threads": 1, "log_every": 1, "batch_size": 4, "max_train_samples": 80,
            "pretrain_middle_max_samples": 80, "pretrain_adapter_max_samples": 80, "max_validation_samples": 4,
            "max_test_samples": 4, "pretrain_middle_epochs": 1, "pretrain_adapter_epochs": 1,
            "finetune_middle_epochs": 1, "finetune_adapter_epochs": 1, "save_every": 1000}
# Run to run on one CPU the losses are bit-identical (also with two threads); the margin allows another CPU's
# float rounding, and is still tight: learning_rate x 1.001 moves the losses by up to 3e-4 within 20 steps, past
# the margin from step 8 of the first stage.
RTOL = 1e-4


def train_losses(tiny_root: Path, work: Path) -> dict[str, list[float]]:
    """stage -> its first STEPS logged training losses, from a fresh run of the tiny preset at SETTINGS."""
    config = assets_config(tiny_root, preprocess_cache_dir=str(work / "cache"), checkpoint_dir=str(work / "ckpt"),
                           output_dir=str(work / "run"), use_tui=False, **SETTINGS)
    assert run(config, ModeOptions()).exit_code == 0
    losses: dict[str, list[float]] = {}
    for line in (work / "run" / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["split"] == "train":
            losses.setdefault(record["stage"], []).append(record["loss"])
    return {stage: values[:STEPS] for stage, values in losses.items()}


def first_difference(stored: dict[str, list[float]], fresh: dict[str, list[float]]) -> str:
    """'' when every loss agrees within RTOL, else the first that does not, with both values."""
    for stage in STAGES:
        for step, (want, got) in enumerate(zip(stored[stage], fresh[stage]), start=1):
            if not math.isclose(got, want, rel_tol=RTOL):
                change = abs(got - want) / abs(want)
                return f"{stage} step {step}: stored {want!r}, now {got!r} (relative change {change:.1e})"
    return ""


def test_the_first_20_losses_of_each_stage_match_the_golden_trace(tiny_root, tmp_path):
    fresh = train_losses(tiny_root, tmp_path)
    assert list(fresh) == list(STAGES) and all(len(v) == STEPS for v in fresh.values()), (
        f"expected {STEPS} logged training losses in each of {STAGES}, got { {s: len(v) for s, v in fresh.items()} }")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        trace = {"settings": SETTINGS, "torch": torch.__version__, "losses": fresh}
        GOLDEN.write_text(json.dumps(trace, indent=1) + "\n")
        pytest.skip(f"wrote {GOLDEN.name}: commit it with a note saying why the losses changed")
    golden = json.loads(GOLDEN.read_text())
    assert golden["settings"] == SETTINGS, f"SETTINGS changed since {GOLDEN.name} was written: run `{REGENERATE}`"
    assert list(golden["losses"]) == list(STAGES) and all(len(v) == STEPS for v in golden["losses"].values())
    difference = first_difference(golden["losses"], fresh)
    assert not difference, (
        f"training changed numerically: {difference}. Trace written with torch {golden['torch']}, now "
        f"{torch.__version__}. If the change is meant, regenerate with `{REGENERATE}` and say why in the commit.")


def test_a_loss_moved_past_the_margin_is_named_and_one_within_it_is_not():
    stored = json.loads(GOLDEN.read_text())["losses"]
    nudged = {stage: list(values) for stage, values in stored.items()}
    nudged["finetune_middle"][6] *= 1 + RTOL / 10
    assert first_difference(stored, nudged) == ""
    nudged["finetune_middle"][6] *= 1 + 2 * RTOL
    assert first_difference(stored, nudged).startswith("finetune_middle step 7: stored ")
