"""The curves written at the end of training (training/plots.py), from a metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from latentbridge.training.plots import read_metric_lines, write_plots


def write_metrics(path: Path) -> None:
    lines = []
    for stage, steps in (("pretrain_middle", 6), ("finetune_adapter", 4)):
        for step in range(1, steps + 1):
            lines.append({"stage": stage, "split": "train", "step": step, "loss": 2.0 / step, "lr": 1e-3 * step})
        for step in range(2, steps + 1, 2):
            extra = {"rouge": {"rouge1": 20.0 + step, "rouge2": 5.0, "rougeL": 18.0 + step}} if "adapter" in stage else {}
            lines.append({"stage": stage, "split": "validation", "step": step, "loss": 2.5 / step, **extra})
    lines.append("not json: a line torn by a crash")
    lines.append({"stage": "pretrain_middle", "split": "train", "step": 6, "loss": 0.25, "lr": 0.0})  # after a resume
    path.write_text("\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines) + "\n")


def test_one_png_per_stage_with_rouge_below_the_losses_when_measured(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    paths = write_plots(tmp_path / "metrics.jsonl", tmp_path / "plots")
    assert [p.name for p in paths] == ["1_pretrain_middle.png", "2_finetune_adapter.png"]
    sizes = [Image.open(p).size for p in paths]
    assert all(Image.open(p).format == "PNG" for p in paths)
    assert sizes[1][1] > sizes[0][1]  # the adapter stage has a second panel: its validation ROUGE


def test_a_resumed_run_s_repeated_steps_count_once_the_later_wins(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    lines = read_metric_lines(tmp_path / "metrics.jsonl")
    last = [line for line in lines if line["stage"] == "pretrain_middle" and line["split"] == "train" and line["step"] == 6]
    assert len(last) == 1 and last[0]["loss"] == 0.25


def test_no_metrics_no_plots(tmp_path):
    assert write_plots(tmp_path / "missing.jsonl", tmp_path / "plots") == []
