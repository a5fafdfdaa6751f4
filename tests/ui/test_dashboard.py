"""Plain progress lines, the Rich dashboard render, and which display the factory picks."""

from __future__ import annotations

import io

from rich.console import Console

from latentbridge.training.metrics import StepMetrics
from latentbridge.training.display import NullDisplay
from latentbridge.ui.dashboard import PlainProgress, RichDashboard, make_progress_display


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=300, color_system=None), out


def metrics(step: int, epoch: int = 0, **kw) -> StepMetrics:
    kw.setdefault("losses", {"total": 1.25, "mse": 1.0, "infonce": 2.5})
    return StepMetrics("pretrain_middle", epoch, step, lr=1e-3, grad_norm=0.5, samples_per_s=1234.0, tokens_per_s=56789.0,
                       memory_gb=1.5, **kw)


def test_plain_display_output():
    console, out = plain_console()
    clock = FakeClock()
    display = PlainProgress(console, every_s=10, clock=clock)
    display.start_stage("pretrain_middle", 1, 4, epochs=2, steps_per_epoch=50)
    for step in range(1, 101):
        clock.now += 0.5  # 2 steps/s: a line every 20 steps
        display.update(metrics(step, epoch=(step - 1) // 50))
    display.update(metrics(100, epoch=1, losses={"total": 0.9}, split="validation"))
    display.checkpoint_state(writing_step=100, last_safe_step=None)
    display.checkpoint_state(writing_step=None, last_safe_step=100)
    display.sample("Anna: lunch\nat 1?")
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "stage 1/4 pretrain_middle: 2 epochs x 50 steps"
    assert lines[1] == ("[pretrain_middle 1/4] epoch 1/2 step 1/100 (1%) eta 50s | loss 1.25 (mse 1 infonce 2.5) "
                        "lr 1.00e-03 gnorm 0.5 | 1.2k samples/s 56.8k tok/s | mem 1.5 GB")
    progress = [line for line in lines if line.startswith("[pretrain_middle 1/4]")]
    assert [p.split(" step ")[1].split(" ")[0] for p in progress] == ["1/100", "21/100", "41/100", "61/100", "81/100", "100/100"]
    assert "eta 10s" in progress[-2]  # 19 steps left at 0.5 s/step, measured from the stage start
    assert lines[-3:] == ["[pretrain_middle] validation epoch 2/2: loss 0.9", "checkpoint committed: step 100",
                          "sample: Anna: lunch at 1?"]


def test_plain_display_reports_checkpoint_failure_once():
    console, out = plain_console()
    display = PlainProgress(console)
    display.checkpoint_state(None, 5, error="disk full")
    display.checkpoint_state(None, 5, error="disk full")
    assert out.getvalue().splitlines() == ["checkpoint FAILED: disk full"]


def test_dashboard_renders_everything():
    console = Console(record=True, force_terminal=True, width=120, file=io.StringIO())
    clock = FakeClock()
    dash = RichDashboard(console, clock=clock)
    dash.start_stage("finetune_adapter", 4, 4, epochs=2, steps_per_epoch=10, start_step=0)
    clock.now += 5
    dash.update(metrics(5, losses={"total": 2.5, "ce": 2.5}))
    dash.checkpoint_state(writing_step=5, last_safe_step=3)
    dash.sample("Ben will bring lunch at 1.")
    console.print(dash.render())
    text = console.export_text()
    for expected in ("stage", "4/4 finetune_adapter", "epoch 1/2 step 5/20 (25%) eta 15s", "loss 2.5", "1.00e-03",
                     "1.2k samples/s, 56.8k tokens/s", "1.50 GB", "writing step 5, last safe step 3",
                     "Ben will bring lunch at 1."):
        assert expected in text, expected
    dash.close()


def test_factory_picks_by_terminal_flag_and_rank():
    tty = Console(force_terminal=True, file=io.StringIO())
    pipe = Console(force_terminal=False, file=io.StringIO())
    assert isinstance(make_progress_display(True, True, tty), RichDashboard)
    assert isinstance(make_progress_display(False, True, tty), PlainProgress)
    assert isinstance(make_progress_display(True, True, pipe), PlainProgress)
    assert isinstance(make_progress_display(True, False, tty), NullDisplay)


def test_rank1_prints_nothing(capsys):
    display = make_progress_display(False, False)
    display.start_stage("s", 1, 1, epochs=1, steps_per_epoch=1)
    display.update(metrics(1))
    display.message("hello")
    display.close()
    assert capsys.readouterr() == ("", "")


def test_dashboard_prints_notes_until_the_first_stage_starts_the_panel():
    out = io.StringIO()
    console = Console(force_terminal=True, width=100, file=out)
    dash = RichDashboard(console, clock=FakeClock())
    dash.message("Building the cache")  # another live progress bar may be running now: no panel yet
    assert not dash._started and "Building the cache" in out.getvalue()
    dash.start_stage("pretrain_middle", 1, 4, epochs=1, steps_per_epoch=2)
    assert dash._started
    dash.close()
    assert not dash._started


def test_plain_sample_keeps_the_output_whole_and_shortens_the_target():
    console, out = plain_console()
    display = PlainProgress(console)
    output = "Ben will bring lunch at 1. " * 12  # ~320 characters: the old 200-character cut lost the output
    display.sample(output, target="Anna asks about lunch. " * 20)
    line = out.getvalue().strip()
    assert line.endswith(" ".join(output.split())) and "| output: " in line
    assert len(line.split(" | output: ")[0]) <= len("sample: target: ") + 120


def test_dashboard_fits_80x24_with_a_long_sample_and_prints_notes_above():
    out = io.StringIO()
    console = Console(record=True, force_terminal=True, width=80, height=24, file=out, color_system=None)
    clock = FakeClock()
    dash = RichDashboard(console, clock=clock)
    dash.start_stage("finetune_middle", 3, 4, epochs=10, steps_per_epoch=63)
    clock.now += 5
    dash.update(metrics(245, epoch=3, losses={"total": 0.1624, "mse": 0.01176, "contrastive": 1.506, "stop": 0.0}))
    dash.update(metrics(245, losses={"total": 0.17, "contrastive": 1.642, "mse": 0.01247, "stop": 0.0},
                        split="validation"))
    dash.checkpoint_state(writing_step=None, last_safe_step=800)
    dash.sample("In 1877, the first hospital was founded. " * 8, target="In 1813, a railway line was opened. " * 8)
    dash.message("finetune_middle epoch 4 step 252: best so far, saving best_model_finetune.pt")
    panel = console.render_lines(dash.render(), console.options)
    assert len(panel) <= 14  # with a line of notes above and the shell prompt, within 24 rows
    text = "\n".join("".join(seg.text for seg in line) for line in panel)
    assert "epoch 4/10 step 245/630" in text and "output: In 1877" in text
    assert "best so far" not in text  # notes go above the panel, not into it
    dash.close()
    assert "finetune_middle epoch 4 step 252: best so far, saving best_model_finetune.pt" in out.getvalue()
