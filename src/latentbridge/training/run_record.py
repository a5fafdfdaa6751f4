"""Where a metrics line goes: metrics.jsonl, the progress display, and the experiment trackers (through
accelerate; a no-op without trackers), except the lines the trackers of a resumed run received already."""

from __future__ import annotations

from typing import Any

from latentbridge.training.metrics import MetricsWriter, StepMetrics, tracker_values
from latentbridge.training.display import ProgressDisplay

LoggedLine = tuple[str, str, int]  # (split, stage, global_step) of a metrics line


class RunRecord:
    def __init__(self, writer: MetricsWriter, display: ProgressDisplay, accelerator: Any) -> None:
        self.writer, self.display, self.accelerator = writer, display, accelerator
        self.logged_before: set[LoggedLine] = set()  # set by a resume (resume.continue_the_record)

    def write(self, m: StepMetrics) -> None:
        """One metrics line, to the file, the display and the trackers."""
        self.writer.write(m)
        self.display.update(m)
        key = (m.split, m.stage, m.global_step)
        if key in self.logged_before:  # the stopped run this one resumes logged it already
            self.logged_before.discard(key)
            return
        self.accelerator.log(tracker_values(m), step=m.global_step)
