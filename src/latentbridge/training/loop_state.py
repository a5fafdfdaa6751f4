"""What the loop carries from step to step: `LoopState` (saved in every step checkpoint, JSON), the sums of the
metrics line being gathered (`LogWindow`), and what `Trainer.train()` returns (`TrainResult`).

The field names of `LoopState` and of `LogWindow.to_json()` are the keys of a checkpoint's state.json: renaming
one would stop existing checkpoints from resuming.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.errors import UserError


@dataclass
class LoopState:
    """Where the pipeline is; saved in every step checkpoint (JSON) for an exact resume."""

    plan: list[str]
    stage_index: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already trained (always whole windows)
    step: int = 0            # optimizer steps in this stage
    global_step: int = 0     # optimizer steps over the whole pipeline (names the checkpoints)
    best_val: float = math.inf  # the stage's best selection score so far (lower is better: loss, or -rougeL)
    evals_since_best: int = 0  # validations of this stage since its best one (early stopping)
    best: dict[str, float] = field(default_factory=dict)  # stage -> validation loss of its best weights
    best_scores: dict[str, float] = field(default_factory=dict)  # stage -> its best best_model_metric value
    early_stopped: list[str] = field(default_factory=list)  # stages that early stopping ended
    trainable: dict[str, int] = field(default_factory=dict)  # stage -> trainable parameters (summary.json)
    metrics_lines: Optional[int] = None  # lines of metrics.jsonl when saved: a resume cuts the file back to them
    log_window: dict[str, Any] = field(default_factory=dict)  # sums since the last metrics line (LogWindow)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Path) -> "LoopState":
        """The loop state a checkpoint file (`where`) holds; UserError naming it when a field is missing or malformed."""
        try:
            state = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:  # a required field is missing
            raise UserError(f"{where} is malformed: its loop state is incomplete ({exc}).") from None
        counters = (state.stage_index, state.epoch, state.batch_in_epoch, state.step, state.global_step)
        well_typed = (isinstance(state.plan, list) and isinstance(state.best, dict)
                      and isinstance(state.best_val, (int, float)) and all(type(n) is int and n >= 0 for n in counters))
        if not well_typed:
            raise UserError(f"{where} is malformed: its loop state {dict(data)!r} has fields of the wrong type.")
        return state

    def start_next_stage(self) -> None:
        """Move to the next stage: its counters and its best score start afresh."""
        self.stage_index += 1
        self.epoch = self.batch_in_epoch = self.step = self.evals_since_best = 0
        self.best_val = math.inf

    def start_next_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0


@dataclass
class TrainResult:
    state: LoopState
    interrupted: bool  # Ctrl-C, SIGTERM or stop_after_steps stopped the run after a checkpoint
    handoff: Optional[Path]  # the hand-off model file (None when interrupted or nothing was planned)


class LogWindow:
    """Sums since the last metrics line."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sums: dict[str, float] = {}
        self.steps = self.samples = self.tokens = 0

    @classmethod
    def resumed(cls, saved: Mapping[str, Any]) -> "LogWindow":
        """A window holding the sums a checkpoint saved (empty: a fresh one)."""
        window = cls(time.perf_counter())
        window.sums = dict(saved.get("sums", {}))
        window.steps, window.samples, window.tokens = (int(saved.get(k, 0)) for k in ("steps", "samples", "tokens"))
        return window

    def to_json(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "steps": self.steps, "samples": self.samples, "tokens": self.tokens}

    def add(self, losses: Mapping[str, float], samples: int, tokens: int) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        self.samples += samples
        self.tokens += tokens

    def mean(self) -> dict[str, float]:
        return {k: v / max(1, self.steps) for k, v in self.sums.items()}
