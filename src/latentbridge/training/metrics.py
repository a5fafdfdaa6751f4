"""Metrics files of a run: `metrics.jsonl` (one JSON object per logging step) and `summary.json`.

Both are written by rank 0 only. Each line of `metrics.jsonl` is appended by one write of the whole line;
a write that fails (a full disk) is truncated back, so the file holds whole lines only, and a torn last
line left by a kill is removed, with a note, when the file is opened again (`--resume`). `summary.json`
is replaced atomically. A write the file system refuses is a UserError naming the file.
Non-finite numbers are written as null and their names listed under "nonfinite", so every
line stays valid JSON (`jq`, pandas.read_json(lines=True)).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from latentbridge.errors import UserError
from latentbridge.files import REFUSED_WRITES, write_text_atomic

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
    """The JSON object written for `metrics` (flat, with `loss` = total and `losses` = components, `epoch`
    1-based)."""
    raw = asdict(metrics)
    raw["epoch"] = metrics.epoch + 1  # counted from 1, as the screen shows it (StepMetrics counts from 0)
    raw["losses"] = dict(metrics.losses)
    extra = raw.pop("extra") or {}
    record = {"time": round(time.time() if now is None else now, 3), "loss": metrics.loss, **raw, **extra}
    nonfinite: list[str] = []
    record = {k: _clean(v, k, nonfinite) for k, v in record.items()}
    if nonfinite:
        record["nonfinite"] = nonfinite
    return record


class MetricsWriteError(UserError):
    """The file system refused a metrics line or the summary (a full disk); earlier lines are intact."""


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def tracker_values(metrics: StepMetrics) -> dict[str, float]:
    """The numbers of one metrics line as experiment trackers take them: `<split>/<stage>/<name>` -> value
    (losses by component, lr, grad norm, throughput, and ROUGE of validations); non-finite values left out."""
    prefix = f"{metrics.split}/{metrics.stage}/"
    values: dict[str, Any] = {f"loss/{k}": v for k, v in metrics.losses.items()}
    values.update({k: getattr(metrics, k) for k in ("lr", "grad_norm", "samples_per_s", "tokens_per_s")})
    values.update(metrics.extra.get("rouge") or {})
    return {prefix + k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and math.isfinite(v)}


class MetricsWriter:
    """Appends metric lines to `<run_dir>/metrics.jsonl`; writes `summary.json` at the end. No-op off rank 0."""

    def __init__(self, run_dir: str | Path, *, is_main: bool = True, note: Callable[[str], None] = _note) -> None:
        self.run_dir = Path(run_dir)
        self.is_main = is_main
        self._fd: int | None = None
        self._refused: MetricsWriteError | None = None  # the first refused line: the cause to report
        if is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self._drop_torn_line(note)
        self.lines = self._count_lines()  # lines in the file: a step checkpoint records it (`truncate_to`)

    @property
    def path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def _drop_torn_line(self, note: Callable[[str], None]) -> None:
        size = os.fstat(self._fd).st_size
        whole = _whole_lines_size(self.path, size)
        if whole < size:
            os.ftruncate(self._fd, whole)
            note(f"Note: {self.path} ended in a torn line ({size - whole} bytes) left by an interrupted write; "
                 "it was removed, the whole lines before it are kept.")

    def _count_lines(self) -> int:
        if self._fd is None:
            return 0
        with open(self.path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))

    def truncate_to(self, lines: int) -> list[dict[str, Any]]:
        """Keep the first `lines` lines (what the file held when the checkpoint a run resumes from was saved) and
        return the records cut off: the steps a killed run logged after that checkpoint, which the resumed run
        logs again. No-op (nothing cut) off rank 0 or when the file holds no more lines."""
        if self._fd is None or self.lines <= lines:
            return []
        with open(self.path, "rb") as f:
            kept = b"".join(f.readline() for _ in range(lines))
            cut = f.read()
        os.ftruncate(self._fd, len(kept))
        self.lines = lines
        return [json.loads(line) for line in cut.splitlines() if line.strip()]

    def write(self, metrics: StepMetrics) -> None:
        self.write_record(to_record(metrics))

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Append any JSON-able record (e.g. {"event": "checkpoint", ...}) as one line."""
        if self._fd is None:
            return
        nonfinite: list[str] = []
        clean = {k: _clean(v, k, nonfinite) for k, v in record.items()}
        if nonfinite:
            clean["nonfinite"] = clean.get("nonfinite", []) + nonfinite
        self._append((json.dumps(clean, allow_nan=False, default=str) + "\n").encode("utf-8"))
        self.lines += 1

    def _append(self, line: bytes) -> None:
        """One write of the whole line; on failure the file is truncated back to the lines before it."""
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # a short write: the disk filled up in the middle of the line
                written += os.write(self._fd, line[written:])
        except OSError as error:
            os.ftruncate(self._fd, size)
            if error.errno not in REFUSED_WRITES:
                raise
            self._refused = MetricsWriteError(
                f"Cannot append to {self.path} (output_dir): {error.strerror}. The "
                f"{'lines written before are' if size else 'file is'} intact; free some space or choose another "
                "--output-dir, then continue with --resume auto.")
            raise self._refused from None

    def write_summary(self, summary: Mapping[str, Any]) -> Path | None:
        """Atomically (tmp + fsync + rename) write `<run_dir>/summary.json`."""
        if not self.is_main:
            return None
        nonfinite: list[str] = []
        clean = {k: _clean(v, k, nonfinite) for k, v in summary.items()}
        if nonfinite:
            clean["nonfinite"] = nonfinite
        path = self.run_dir / SUMMARY_FILE
        try:
            write_text_atomic(path, json.dumps(clean, indent=2, allow_nan=False, default=str) + "\n")
        except OSError as error:
            if error.errno not in REFUSED_WRITES:
                raise
            if self._refused is not None:  # the same full disk: report where it started
                raise self._refused from None
            raise MetricsWriteError(f"Cannot write {path} (output_dir): {error.strerror}. Any earlier summary there "
                                    "is intact; free some space or choose another --output-dir.") from None
        return path

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _whole_lines_size(path: Path, size: int) -> int:
    """The length of the file's first `size` bytes up to and including their last newline (0 if none)."""
    end = size
    with open(path, "rb") as f:
        while end > 0:
            start = max(0, end - (1 << 16))
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0
