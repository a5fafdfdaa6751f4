"""Training progress on the terminal: a Rich live dashboard, or plain lines for pipes and CI.

Both implement training/display.py's `ProgressDisplay`; the trainer calls it and never checks which one
it has. The modes build the display here and pass it down to the trainer.
`make_progress_display(use_tui, is_main)` picks: nothing on ranks other than 0, the dashboard
when `use_tui` is on and the console is an interactive terminal, plain lines otherwise
(one line per `every_s` seconds, plus stage starts, validation, checkpoints and samples).
"""

from __future__ import annotations

import textwrap
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Optional

from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from latentbridge.training.metrics import StepMetrics
from latentbridge.training.display import NullDisplay, ProgressDisplay
from latentbridge.ui.live import logging_through


# ----------------------------------------------------------------------------- shared state


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _num(value: float | None, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    return "nan" if value != value else format(value, spec)


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.1f}"


@dataclass
class _StageView:
    name: str = ""
    index: int = 0
    total_stages: int = 0
    epochs: int = 0
    steps_per_epoch: int = 0
    start_step: int = 0
    started_at: float = 0.0
    step: int = 0
    epoch: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def eta(self, now: float) -> float | None:
        done = self.step - self.start_step
        if done <= 0 or not self.total_steps:
            return None
        return (now - self.started_at) / done * max(0, self.total_steps - self.step)


class _Tracker:
    """What both displays remember: the current stage, last metrics, checkpoint state, last sample."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stage = _StageView()
        self.train: StepMetrics | None = None
        self.validation: StepMetrics | None = None
        self.writing_step: int | None = None
        self.last_safe_step: int | None = None
        self.ckpt_error: str | None = None
        self.last_sample: str | None = None  # the model's output
        self.last_target: str | None = None  # what it should have written

    def start_stage(self, name, index, total_stages, epochs, steps_per_epoch, start_step) -> None:
        self.stage = _StageView(name, index, total_stages, epochs, steps_per_epoch, start_step, self.clock(), start_step)
        self.train = self.validation = None

    def update(self, m: StepMetrics) -> None:
        if m.split == "train":
            self.train = m
            self.stage.step, self.stage.epoch = m.step, m.epoch
        else:
            self.validation = m

    def progress_text(self) -> str:
        s = self.stage
        pct = f" ({100 * s.step / s.total_steps:.0f}%)" if s.total_steps else ""
        return f"epoch {s.epoch + 1}/{s.epochs} step {s.step}/{s.total_steps}{pct} eta {format_duration(s.eta(self.clock()))}"

    def checkpoint_text(self) -> str:
        if self.ckpt_error:
            return f"FAILED ({self.ckpt_error})"
        parts = []
        if self.writing_step is not None:
            parts.append(f"writing step {self.writing_step}")
        parts.append(f"last safe step {self.last_safe_step}" if self.last_safe_step is not None else "none committed yet")
        return ", ".join(parts)


def _losses_text(m: StepMetrics) -> str:
    parts = [f"loss {_num(m.loss)}"]
    others = [f"{k} {_num(v)}" for k, v in m.losses.items() if k != "total"]
    if others and "total" in m.losses:
        parts.append("(" + " ".join(others) + ")")
    return " ".join(parts)


def _shorten(text: str, chars: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[: chars - 3].rstrip() + "..."


SAMPLE_TARGET_CHARS = 120


# ----------------------------------------------------------------------------- plain lines


class PlainProgress:
    """One line per `every_s` seconds (and at stage ends); events get their own line. For pipes, CI, nohup."""

    def __init__(self, console: Console | None = None, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console(highlight=False)
        self.every_s = every_s
        self._t = _Tracker(clock)
        self._last_line: float | None = None

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)

    def start_stage(self, name: str, index: int, total_stages: int, *, epochs: int, steps_per_epoch: int, start_step: int = 0) -> None:
        self._t.start_stage(name, index, total_stages, epochs, steps_per_epoch, start_step)
        self._last_line = None
        resumed = f", resuming at step {start_step}" if start_step else ""
        self._print(f"stage {index}/{total_stages} {name}: {epochs} epochs x {steps_per_epoch} steps{resumed}")

    def update(self, metrics: StepMetrics) -> None:
        self._t.update(metrics)
        s = self._t.stage
        if metrics.split != "train":
            self._print(f"[{s.name}] {metrics.split} epoch {metrics.epoch + 1}/{s.epochs}: {_losses_text(metrics)}")
            return
        now = self._t.clock()
        due = self._last_line is None or now - self._last_line >= self.every_s or metrics.step >= s.total_steps
        if not due:
            return
        self._last_line = now
        m = metrics
        line = (f"[{s.name} {s.index}/{s.total_stages}] {self._t.progress_text()} | {_losses_text(m)} "
                f"lr {_num(m.lr, '.2e')} gnorm {_num(m.grad_norm, '.3g')} | {_si(m.samples_per_s)} samples/s")
        if m.tokens_per_s is not None:
            line += f" {_si(m.tokens_per_s)} tok/s"
        if m.memory_gb is not None:
            line += f" | mem {m.memory_gb:.1f} GB"
        self._print(line)

    def checkpoint_state(self, writing_step: int | None, last_safe_step: int | None, error: str | None = None) -> None:
        t = self._t
        if error and error != t.ckpt_error:
            self._print(f"checkpoint FAILED: {error}")
        elif last_safe_step is not None and last_safe_step != t.last_safe_step:
            self._print(f"checkpoint committed: step {last_safe_step}")
        t.writing_step, t.last_safe_step, t.ckpt_error = writing_step, last_safe_step, error

    def sample(self, output: str, target: Optional[str] = None) -> None:
        """The output whole (it is what the line is for); the target is shortened to keep the line short."""
        self._t.last_sample, self._t.last_target = output, target
        flat = " ".join(output.split())
        self._print(f"sample: target: {_shorten(target, SAMPLE_TARGET_CHARS)} | output: {flat}" if target
                    else f"sample: {flat}")

    def message(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- Rich dashboard


SAMPLE_LINES = 3  # lines of the panel's sample: with the rest, the panel fits an 80x24 terminal
LABEL_WIDTH = 14


class RichDashboard:
    """A live panel: stage x of y, epoch, step bar with ETA, losses, lr, throughput, memory, checkpoints, sample.

    At most 14 lines, so it fits an 80x24 terminal with room for the notes above it: notes are printed above the
    panel on the same console, as are print(), warnings and logging while it is live (latentbridge.ui.live)."""

    def __init__(self, console: Console | None = None, *, clock: Callable[[], float] = time.monotonic, refresh_per_second: float = 4) -> None:
        self.console = console or Console()
        self._t = _Tracker(clock)
        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=refresh_per_second,
                          transient=False, redirect_stdout=True, redirect_stderr=True)
        self._started = False
        self._routing = ExitStack()

    def _refresh(self, start: bool = True) -> None:
        """Redraw; the live panel starts with the first stage (before that, e.g. while the cache is built
        under its own progress bar, notes are printed as plain lines)."""
        if not self._started and start:
            self._routing.enter_context(logging_through(self.console))  # before the Live replaces sys.stderr
            self._live.start()
            self._started = True
        if self._started:
            self._live.refresh()

    def _text_width(self) -> int:
        """Characters of a value cell: the console's width less the panel's border and the label column."""
        return max(20, self.console.width - LABEL_WIDTH - 6)

    def render(self) -> RenderableType:
        t, s = self._t, self._t.stage
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", no_wrap=True, width=LABEL_WIDTH)
        grid.add_column()
        grid.add_row("stage", f"{s.index}/{s.total_stages} {s.name}" if s.name else "-")
        bar = ProgressBar(total=max(1, s.total_steps), completed=min(s.step, max(1, s.total_steps)),
                          width=min(40, self._text_width()))
        grid.add_row("progress", bar)
        grid.add_row("", _line(t.progress_text()))
        m = t.train
        if m is not None:
            grid.add_row("loss", _line(_losses_text(m)))
            grid.add_row("lr / grad norm", f"{_num(m.lr, '.2e')} / {_num(m.grad_norm, '.3g')}")
            tput = f"{_si(m.samples_per_s)} samples/s"
            if m.tokens_per_s is not None:
                tput += f", {_si(m.tokens_per_s)} tokens/s"
            grid.add_row("throughput", tput)
            grid.add_row("memory", f"{m.memory_gb:.2f} GB" if m.memory_gb is not None else "-")
        if t.validation is not None:
            grid.add_row("validation", _line(f"epoch {t.validation.epoch + 1}: {_losses_text(t.validation)}"))
        style = "bold red" if t.ckpt_error else ("yellow" if t.writing_step is not None else "green")
        grid.add_row("checkpoint", _line(t.checkpoint_text(), style=style))
        if t.last_sample:
            grid.add_row("sample", self._sample_text())
        return Panel(grid, title="latentbridge training", border_style="blue")

    def _sample_text(self) -> Text:
        """The output first and whole where it fits, then the target, within SAMPLE_LINES lines."""
        t = self._t
        text = f"output: {' '.join(t.last_sample.split())}"
        if t.last_target:
            text += f" | target: {' '.join(t.last_target.split())}"
        lines = textwrap.wrap(text, self._text_width()) or [""]
        if len(lines) > SAMPLE_LINES:
            lines = lines[:SAMPLE_LINES]
            lines[-1] = lines[-1][: self._text_width() - 3] + "..."
        return Text("\n".join(lines))

    def start_stage(self, name: str, index: int, total_stages: int, *, epochs: int, steps_per_epoch: int, start_step: int = 0) -> None:
        self._t.start_stage(name, index, total_stages, epochs, steps_per_epoch, start_step)
        self._refresh()

    def update(self, metrics: StepMetrics) -> None:
        self._t.update(metrics)
        self._refresh()

    def checkpoint_state(self, writing_step: int | None, last_safe_step: int | None, error: str | None = None) -> None:
        self._t.writing_step, self._t.last_safe_step, self._t.ckpt_error = writing_step, last_safe_step, error
        self._refresh(start=False)

    def sample(self, output: str, target: Optional[str] = None) -> None:
        self._t.last_sample, self._t.last_target = output, target
        self._refresh(start=False)

    def message(self, text: str) -> None:
        """Printed above the panel (before it starts, above any progress bar on the same console)."""
        self.console.print(text, markup=False, highlight=False)
        self._refresh(start=False)

    def close(self) -> None:
        if self._started:
            self._live.refresh()
            self._live.stop()
            self._routing.close()
            self._started = False


def _line(text: str, style: str = "") -> Text:
    """One line of the panel: cut with an ellipsis rather than wrapped, so the panel keeps its height."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def make_progress_display(use_tui: bool, is_main: bool, console: Console | None = None, *, every_s: float = 10.0) -> ProgressDisplay:
    """Dashboard on an interactive terminal with use_tui, plain lines otherwise, nothing off rank 0."""
    if not is_main:
        return NullDisplay()
    console = console or Console()
    if use_tui and console.is_terminal and not console.is_dumb_terminal:
        return RichDashboard(console)
    return PlainProgress(console, every_s=every_s)
