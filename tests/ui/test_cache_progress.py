"""Plain progress lines when the console is not a terminal."""

import io
import logging
import re
import sys

from rich.console import Console

from latentbridge.ui.cache_progress import LineProgress, RichProgress, console_progress


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = console_progress(use_rich=True, stream=stream)
    assert isinstance(progress, LineProgress)
    progress.start("preprocess dialogue/train", 10)
    for _ in range(10):
        progress.advance(1)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("preprocess dialogue/train 0/10") and lines[-1].startswith("preprocess dialogue/train 10/10 (100%)")
    assert len(lines) == 2


def test_plain_lines_end_at_the_real_total_when_rows_were_skipped():
    stream = io.StringIO()
    progress = console_progress(use_rich=True, stream=stream)
    progress.start("preprocess pretrain/train", 10)  # an upper bound: 3 rows will be skipped
    progress.advance(7)
    progress.finish()
    assert stream.getvalue().splitlines()[-1].startswith("preprocess pretrain/train 7/7 (100%)")


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=80, color_system=None), out


def _screen_lines(out: io.StringIO) -> list[str]:
    """What stays on the screen, roughly: the text split at line ends and cursor moves, escape codes dropped."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", out.getvalue())
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def test_notes_warnings_and_logging_print_above_the_bar_never_glued_to_it():
    console, out = _terminal()
    progress = console_progress(use_rich=True, console=console)
    assert isinstance(progress, RichProgress)
    handler = logging.StreamHandler(sys.stderr)  # as transformers' own handler: holds the stream it was made with
    logger = logging.getLogger("latentbridge.test.live")
    logger.addHandler(handler)
    try:
        progress.start("preprocess pretrain/train", 10)
        progress.advance(3)
        console.print("pretrain/train: skipped 3 too short to split")
        print("a library warning during the build", file=sys.stderr)  # what warnings.showwarning does
        logger.warning("a logged warning during the build")
        progress.advance(4)
        progress.finish()
    finally:
        logger.removeHandler(handler)
    assert handler.stream is sys.stderr  # the handler's own stream again
    lines = _screen_lines(out)
    for note in ("pretrain/train: skipped 3 too short to split", "a library warning during the build",
                 "a logged warning during the build"):
        line = next(line for line in lines if note in line)
        assert "━" not in line and "/10" not in line, line
    assert lines[-1].startswith("preprocess pretrain/train") and "7/7" in lines[-1]  # the bar ends at its real total
