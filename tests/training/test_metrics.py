"""metrics.jsonl lines and summary.json."""

from __future__ import annotations

import json

from latentbridge.training.metrics import MetricsWriter, StepMetrics

FIELDS = {"time", "stage", "epoch", "step", "loss", "losses", "lr", "grad_norm", "samples_per_s",
          "tokens_per_s", "memory_gb", "split"}


def test_metrics_lines_are_valid_json_with_the_fields(tmp_path):
    with MetricsWriter(tmp_path / "run") as writer:
        writer.write(StepMetrics("pretrain_middle", 0, 5, {"total": 1.5, "mse": 1.0, "infonce": 5.0}, lr=1e-3,
                                 grad_norm=0.7, samples_per_s=120.0, tokens_per_s=9000.0, memory_gb=1.2))
        writer.write(StepMetrics("pretrain_middle", 0, 10, {"total": float("nan")}, lr=1e-3))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)  # strict JSON: NaN would fail in other parsers
    assert FIELDS <= set(first)
    assert first["loss"] == 1.5 and first["losses"]["mse"] == 1.0 and first["step"] == 5
    assert second["loss"] is None and "loss" in second["nonfinite"]
    assert "NaN" not in lines[1]


def test_metrics_append_across_writers(tmp_path):
    for step in (1, 2):
        with MetricsWriter(tmp_path) as writer:
            writer.write(StepMetrics("s", 0, step, {"total": 1.0}))
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_summary_written_atomically(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write_summary({"best": {"pretrain_middle": 0.5}, "steps": 10, "diverged": float("inf")})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["diverged"] is None
    assert not (tmp_path / "summary.json.tmp").exists()


def test_rank1_writes_no_metrics(tmp_path):
    with MetricsWriter(tmp_path / "run", is_main=False) as writer:
        writer.write(StepMetrics("s", 0, 1, {"total": 1.0}))
        writer.write_summary({"a": 1})
    assert not (tmp_path / "run").exists()


def test_records_count_epochs_from_1_like_the_screen():
    from latentbridge.training.metrics import StepMetrics, to_record

    assert to_record(StepMetrics("pretrain_middle", 0, 5, {"total": 1.0}), now=0)["epoch"] == 1
