"""Writes cut short: a process killed or stopped at a chosen moment of a write (a hook on the writer in a fresh
process, never a sleep), and the corruption matrix of the files this suite owns."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from latentbridge.config import preset_config
from latentbridge.config_sources import resolve_config, write_config_file
from latentbridge.errors import UserError
from latentbridge.evaluation.io import read_inputs
from latentbridge.training.metrics import MetricsWriter, StepMetrics
from tests.factories import cache_folders, hook_nth_call, run_main_with_hook, small_corpus_config, train_config

KILL = "os.kill(os.getpid(), signal.SIGKILL)"

# ------------------------------------------------------------------------------------- atomic files

# moment of write_bytes_atomic -> (hook target, action, what the file holds after the kill)
ATOMIC_MOMENTS = {
    "halfway through the temporary file": (
        "pathlib:Path.write_bytes", "args[0].open('wb', buffering=0).write(args[1][: len(args[1]) // 2]); " + KILL, "old"),
    "before the temporary file is flushed": ("latentbridge.files:fsync_file", KILL, "old"),
    "before the rename": ("latentbridge.files:os.replace", KILL, "old"),
    "after the rename, before the folder is flushed": ("latentbridge.files:fsync_dir", KILL, "new"),
}


@pytest.mark.parametrize("moment", ATOMIC_MOMENTS)
def test_a_file_written_atomically_holds_the_old_or_the_new_content_whatever_the_kill(moment, tmp_path):
    """`--save-config` (like summary.json, infer's --output-file, eval reports) goes through write_bytes_atomic."""
    target, action, expected = ATOMIC_MOMENTS[moment]
    saved = tmp_path / "run.yaml"
    write_config_file(preset_config("tiny"), str(saved))
    old = saved.read_bytes()
    run = run_main_with_hook(hook_nth_call(target, 1, action),
                             ["--mode", "config", "--preset", "tiny", "--seed", "7", "--save-config", str(saved)],
                             cwd=tmp_path, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr
    config = resolve_config(None, [str(saved)], environ={}).config  # whole either way: it loads back
    assert (saved.read_bytes() == old) if expected == "old" else (config.seed == 7)


# ------------------------------------------------------------------------------------- metrics.jsonl


def write_lines(path: Path, steps: range) -> None:
    with MetricsWriter(path) as writer:
        for step in steps:
            writer.write(StepMetrics("pretrain_middle", 0, step, {"total": 1.0}))


def test_a_torn_last_metrics_line_is_removed_at_every_byte_with_a_note(tmp_path):
    write_lines(tmp_path / "whole", range(1, 4))
    whole = (tmp_path / "whole" / "metrics.jsonl").read_bytes()
    last_start = whole.rindex(b"\n", 0, len(whole) - 1) + 1
    for cut in range(last_start, len(whole) + 1):
        run = tmp_path / f"cut{cut}"
        run.mkdir()
        (run / "metrics.jsonl").write_bytes(whole[:cut])
        notes: list[str] = []
        with MetricsWriter(run, note=notes.append) as writer:  # as a resumed run opens it
            writer.write(StepMetrics("pretrain_middle", 0, 9, {"total": 1.0}))
        steps = [json.loads(text)["step"] for text in (run / "metrics.jsonl").read_text().splitlines()]
        torn = cut not in (last_start, len(whole))
        assert steps == ([1, 2, 9] if cut < len(whole) else [1, 2, 3, 9]), cut
        assert len(notes) == (1 if torn else 0), cut
        assert not torn or f"torn line ({cut - last_start} bytes)" in notes[0]


@pytest.mark.slow
def test_training_killed_halfway_through_a_metrics_line_resumes_with_whole_lines(tiny_root, tmp_path):
    config = train_config(tiny_root, tmp_path).replace(log_every=1)
    write_config_file(config, str(tmp_path / "run.yaml"))
    half_line_then_kill = f"os.write(args[0]._fd, args[1][: len(args[1]) // 2]); {KILL}"
    killed = run_main_with_hook(hook_nth_call("latentbridge.training.metrics:MetricsWriter._append", 7,
                                              half_line_then_kill),
                                ["--mode", "train", "--config", "run.yaml"], cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    metrics = Path(config.output_dir) / "metrics.jsonl"
    assert not metrics.read_bytes().endswith(b"\n")  # the kill left half a line
    resumed = run_main_with_hook("", ["--mode", "train", "--config", "run.yaml", "--resume", "auto"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "ended in a torn line" in resumed.stderr
    records = [json.loads(text) for text in metrics.read_text().splitlines()]  # every line parses
    assert records[-1]["stage"] == "finetune_adapter"


# ------------------------------------------------------------------------------------- SIGTERM while preprocessing


def test_sigterm_while_the_cache_is_written_exits_130_and_leaves_no_half_built_cache(small_root, tmp_path):
    config = small_corpus_config(small_root, tmp_path)
    write_config_file(config, str(tmp_path / "run.yaml"))
    stop = "os.kill(os.getpid(), signal.SIGTERM)"  # as a scheduler's preemption, on the 20th record written
    run = run_main_with_hook(hook_nth_call("latentbridge.data.cache:SplitWriter.write", 20, stop),
                             ["--mode", "preprocess", "--config", "run.yaml"], cwd=tmp_path)
    assert run.returncode == 130, run.stderr[-2000:]
    assert run.stderr.rstrip().endswith("Interrupted.") and "Traceback" not in run.stderr
    assert cache_folders(Path(config.preprocess_cache_dir)) == []


# ------------------------------------------------------------------------------------- corruption matrix


def cuts_and_flips(data: bytes, every: int) -> list[bytes]:
    """`data` cut at every `every`-th offset, and with one byte replaced by 0xff, `"` or a newline there."""
    damaged = [data[:cut] for cut in range(0, len(data), every)]
    for at in range(0, len(data), every):
        damaged += [data[:at] + bad + data[at + 1:] for bad in (b"\xff", b'"', b"\n")]
    return damaged


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_damaged_config_file_gives_a_config_or_a_user_error(suffix, tmp_path):
    saved = tmp_path / f"run{suffix}"
    write_config_file(preset_config("tiny"), str(saved))
    outcomes = {"config": 0, "user error": 0}
    for damaged in cuts_and_flips(saved.read_bytes(), every=41):
        saved.write_bytes(damaged)
        try:
            resolve_config(None, [str(saved)], environ={})
            outcomes["config"] += 1
        except UserError:  # anything else (a traceback at the user) fails the test
            outcomes["user error"] += 1
    assert outcomes["config"] and outcomes["user error"]  # the matrix reaches both outcomes


def test_a_damaged_infer_input_file_gives_texts_or_a_user_error(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "dialogue": f"Anna: lunch at {i}? Ben: sure"}) + "\n"
                              for i in range(4)))
    for damaged in cuts_and_flips(source.read_bytes(), every=7):
        source.write_bytes(damaged)
        try:
            assert all(item.text.strip() for item in read_inputs(None, source))
        except UserError:
            pass
