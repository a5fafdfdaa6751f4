"""Curves of a run, drawn from its metrics.jsonl at the end of training: `<run_dir>/plots/<n>_<stage>.png`.

Each stage's figure: training and validation loss against the stage's optimizer steps with the learning rate
on a second axis; below it, when the stage measured ROUGE during training, ROUGE-1/2/L of the validations.
matplotlib with the Agg backend (files only, no display needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # before pyplot: draw into files, never open a window
import matplotlib.pyplot as plt  # noqa: E402

PLOTS_DIR = "plots"
ROUGE_CURVES = ("rouge1", "rouge2", "rougeL")


def read_metric_lines(path: Path) -> list[dict[str, Any]]:
    """The metric lines (train and validation) of a metrics.jsonl; a resumed run repeats the steps after its
    checkpoint, and the later line of a (stage, split, step) wins. Event lines and unreadable lines are skipped."""
    latest: dict[tuple, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(record, dict) and "split" in record and "stage" in record and "step" in record:
            latest[(record["stage"], record["split"], record["step"])] = record
    return list(latest.values())


def write_plots(metrics_path: Path, out_dir: Path) -> list[Path]:
    """One PNG per stage found in `metrics_path`, in pipeline order; returns their paths."""
    records = read_metric_lines(metrics_path) if metrics_path.exists() else []
    stages = list(dict.fromkeys(r["stage"] for r in records))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, stage in enumerate(stages, start=1):
        path = out_dir / f"{i}_{stage}.png"
        plot_stage(stage, [r for r in records if r["stage"] == stage], path)
        paths.append(path)
    return paths


def _points(records: Iterable[dict[str, Any]], split: str, key: str) -> tuple[list[int], list[float]]:
    pairs = sorted((r["step"], r[key]) for r in records if r["split"] == split and r.get(key) is not None)
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_stage(stage: str, records: list[dict[str, Any]], path: Path) -> None:
    """Loss (train, validation) and learning rate against steps; ROUGE of the validations below when present."""
    for r in records:
        r.update({k: v for k, v in (r.get("rouge") or {}).items() if k in ROUGE_CURVES})
    has_rouge = any(r.get("rougeL") is not None for r in records)
    fig, axes = plt.subplots(2 if has_rouge else 1, 1, figsize=(8, 7 if has_rouge else 4.5), squeeze=False)
    loss_ax = axes[0][0]
    loss_ax.plot(*_points(records, "train", "loss"), label="training loss", color="tab:blue")
    loss_ax.plot(*_points(records, "validation", "loss"), "o-", label="validation loss", color="tab:orange")
    loss_ax.set_xlabel("optimizer step (stage)")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title(stage)
    lr_ax = loss_ax.twinx()
    lr_ax.plot(*_points(records, "train", "lr"), "--", label="learning rate", color="tab:gray")
    lr_ax.set_ylabel("learning rate")
    handles = loss_ax.get_legend_handles_labels()
    more = lr_ax.get_legend_handles_labels()
    loss_ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper right")
    if has_rouge:
        rouge_ax = axes[1][0]
        for key in ROUGE_CURVES:
            rouge_ax.plot(*_points(records, "validation", key), "o-", label=key)
        rouge_ax.set_xlabel("optimizer step (stage)")
        rouge_ax.set_ylabel("ROUGE F1 x 100 (validation)")
        rouge_ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
