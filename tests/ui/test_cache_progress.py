"""Plain progress lines when the console is not a terminal."""

import io

from latentbridge.ui.cache_progress import LineProgress, console_progress


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
