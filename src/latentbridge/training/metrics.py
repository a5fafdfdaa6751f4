"""Metrics files of a run: `metrics.jsonl` (one JSON object per logging step) and `summary.json`.

Both are written by rank 0 only. `metrics.jsonl` is appended and flushed line by line, so
`tail -f` and a crash both see whole lines; `summary.json` is replaced atomically.
Non-finite numbers are written as null and their names listed under "nonfinite", so every
line stays valid JSON (`jq`, pandas.read_json(lines=True)).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from latentbridge.files import write_text_atomic

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class StepMetrics:
    """One logging step (or one validation pass, split="validation"). Also what the displays show."""

    stage: str
    epoch: int
    step: int  # optimizer steps done in this stage
    losses: Mapping[str, float]  # "total" plus each component ("mse", "infonce", "ce", ...)
    lr: float | None = None
    grad_norm: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    memory_gb: float | None = None  # peak memory of the stage so far: allocated CUDA memory, or peak RSS on CPU
    global_step: int | None = None  # optimizer steps over the whole pipeline
    split: str = "train"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> float | None:
        return self.losses.get("total", next(iter(self.losses.values()), None))


def _clean(value: Any, name: str, nonfinite: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        nonfinite.append(name)
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v, f"{name}.{k}", nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{name}[{i}]", nonfinite) for i, v in enumerate(value)]
    return value


def to_record(metrics: StepMetrics, *, now: float | None = None) -> dict[str, Any]:
    """The JSON object written for `metrics` (flat, with `loss` = total and `losses` = components)."""
    raw = asdict(metrics)
    raw["losses"] = dict(metrics.losses)
    extra = raw.pop("extra") or {}
    record = {"time": round(time.time() if now is None else now, 3), "loss": metrics.loss, **raw, **extra}
    nonfinite: list[str] = []
    record = {k: _clean(v, k, nonfinite) for k, v in record.items()}
    if nonfinite:
        record["nonfinite"] = nonfinite
    return record


class MetricsWriter:
    """Appends metric lines to `<run_dir>/metrics.jsonl`; writes `summary.json` at the end. No-op off rank 0."""

    def __init__(self, run_dir: str | Path, *, is_main: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.is_main = is_main
        self._file = None
        if is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")

    @property
    def path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def write(self, metrics: StepMetrics) -> None:
        self.write_record(to_record(metrics))

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Append any JSON-able record (e.g. {"event": "checkpoint", ...}) as one line."""
        if self._file is None:
            return
        nonfinite: list[str] = []
        clean = {k: _clean(v, k, nonfinite) for k, v in record.items()}
        if nonfinite:
            clean["nonfinite"] = clean.get("nonfinite", []) + nonfinite
        self._file.write(json.dumps(clean, allow_nan=False, default=str) + "\n")
        self._file.flush()

    def write_summary(self, summary: Mapping[str, Any]) -> Path | None:
        """Atomically (tmp + fsync + rename) write `<run_dir>/summary.json`."""
        if not self.is_main:
            return None
        nonfinite: list[str] = []
        clean = {k: _clean(v, k, nonfinite) for k, v in summary.items()}
        if nonfinite:
            clean["nonfinite"] = nonfinite
        path = self.run_dir / SUMMARY_FILE
        write_text_atomic(path, json.dumps(clean, indent=2, allow_nan=False, default=str) + "\n")
        return path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
