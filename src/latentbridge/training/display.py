"""What the trainer tells a progress display: stage starts, metrics, checkpoint state, samples, notes.

The screen versions (a Rich dashboard, plain lines) live in ui/dashboard.py; the mode that runs the
trainer builds one and passes it in. `NullDisplay` shows nothing (ranks other than 0, tests).
"""

from __future__ import annotations

from typing import Protocol

from latentbridge.training.metrics import StepMetrics


class ProgressDisplay(Protocol):
    def start_stage(self, name: str, index: int, total_stages: int, *, epochs: int, steps_per_epoch: int,
                    start_step: int = 0) -> None:
        """A stage begins (index is 1-based); `start_step` > 0 when resuming inside it."""

    def update(self, metrics: StepMetrics) -> None:
        """A logging step (split="train") or a validation result (split="validation")."""

    def checkpoint_state(self, writing_step: int | None, last_safe_step: int | None, error: str | None = None) -> None:
        """The checkpointer's state: a save in flight, the newest committed step, a failure."""

    def sample(self, output: str, target: str | None = None) -> None:
        """A recently decoded sample: the model's output, and the text it should have written."""

    def message(self, text: str) -> None:
        """A one-off note (resumed from ..., best model saved, ...)."""

    def close(self) -> None: ...


class NullDisplay:
    """Shows nothing: ranks other than 0, and callers that want no display."""

    def start_stage(self, *a, **k) -> None: ...
    def update(self, metrics: StepMetrics) -> None: ...
    def checkpoint_state(self, *a, **k) -> None: ...
    def sample(self, output: str, target: str | None = None) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...
