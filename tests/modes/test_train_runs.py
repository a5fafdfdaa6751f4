"""`--mode train` and its run folders: a fresh run left to the default or preset folders gets its own
`version_N` folder, `--resume auto` continues the latest one, a finished run is not retrained, a resume under
changed settings is refused, and the folders a run writes are locked (latentbridge.runs, modes/train.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from latentbridge.errors import UserError
from latentbridge.locks import RUN_LOCK, RunLock
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run
from latentbridge.runs import LATEST, latest_run, run_folders
from latentbridge.training.checkpoint import find_latest
from tests.factories import cache_folders, train_config

PRESET = {"checkpoint_dir": "preset tiny", "output_dir": "preset tiny"}  # the folders as the tiny preset sets them


def lines(path: Path) -> list[str]:
    return (path / "metrics.jsonl").read_text().splitlines()


def test_fresh_runs_get_their_own_folders_and_resume_auto_continues_the_latest(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path)
    root = Path(c.checkpoint_dir)
    assert run(c, ModeOptions(sources=PRESET), stop_after_steps=3).exit_code == 130
    assert run(c, ModeOptions(sources=PRESET), stop_after_steps=3).exit_code == 130  # refused before run folders (issue 21)
    first, second = run_folders(root)
    assert (first.name, second.name) == ("version_0", "version_1") and latest_run(root) == second
    assert (root / LATEST).read_text().strip() == "version_1"
    assert find_latest(second).name == "step-000000003" and lines(second)  # metrics beside the checkpoints
    assert not Path(c.output_dir).exists()  # output_dir left to the preset: the run folder

    assert run(c, ModeOptions(sources=PRESET, resume="auto")).exit_code == 0
    out = capsys.readouterr().out
    assert f"the latest run under {root} is {second}" in out and "Training done (16 steps)" in out
    assert (second / c.handoff_best_model_filename).is_file() and not (first / c.handoff_best_model_filename).exists()


def test_resume_auto_of_a_finished_run_says_so_and_trains_nothing(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions()).exit_code == 0
    before = lines(Path(c.output_dir))
    steps = sorted(p.name for p in Path(c.checkpoint_dir).glob("step-*"))
    capsys.readouterr()
    assert run(c, ModeOptions(resume="auto")).exit_code == 0
    out = capsys.readouterr().out
    handoff = Path(c.checkpoint_dir) / c.handoff_best_model_filename
    assert f"The run in {c.checkpoint_dir} is finished" in out and str(handoff) in out and "resuming" not in out
    assert lines(Path(c.output_dir)) == before and sorted(p.name for p in Path(c.checkpoint_dir).glob("step-*")) == steps


def test_resume_refuses_changed_settings_naming_both_values_unless_allowed(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=3).exit_code == 130
    changed = c.replace(learning_rate=5e-4, dataset_name=str(tmp_path / "other"), seed=7)
    with pytest.raises(UserError) as refused:
        run(changed, ModeOptions(resume="auto"))
    message = str(refused.value)
    assert "learning_rate: checkpoint 0.001, now 0.0005" in message and "seed: checkpoint 0, now 7" in message
    assert f"dataset_name: checkpoint {c.dataset_name!r}, now {str(tmp_path / 'other')!r}" in message
    assert "--resume-allow-changes learning_rate,dataset_name,seed" in message
    assert find_latest(c.checkpoint_dir).name == "step-000000003" and cache_folders(tmp_path / "cache")  # untouched
    # a deliberate change, and fields that only change where and how things are written
    allowed = c.replace(learning_rate=5e-4, resume_allow_changes="learning_rate", log_every=3, use_tui=False,
                        keep_last_checkpoints=2)
    assert run(allowed, ModeOptions(resume="auto")).exit_code == 0


def test_a_second_training_on_a_shared_output_dir_is_refused(tiny_root, tmp_path):
    """Two trainings with their own checkpoint_dirs but one output_dir interleaved metrics.jsonl (issue 20)."""
    c = train_config(tiny_root, tmp_path)
    with RunLock(Path(c.output_dir) / RUN_LOCK, "output_dir of the first run"):
        other = c.replace(checkpoint_dir=str(tmp_path / "other"))
        with pytest.raises(UserError, match=f"output_dir {c.output_dir} is in use by another run"):
            run(other, ModeOptions())
    assert find_latest(tmp_path / "other") is None and not (Path(c.output_dir) / "metrics.jsonl").exists()


def test_output_dir_equal_to_checkpoint_dir_trains_and_resumes(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    same = c.replace(output_dir=c.checkpoint_dir)
    assert run(same, ModeOptions(), stop_after_steps=3).exit_code == 130
    assert run(same, ModeOptions(resume="auto")).exit_code == 0
    folder = Path(c.checkpoint_dir)
    assert {"metrics.jsonl", "summary.json", c.handoff_best_model_filename} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "summary.json").read_text())["global_step"] == 16


def test_resume_auto_while_the_latest_run_trains_is_refused_naming_it(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(sources=PRESET), stop_after_steps=3).exit_code == 130
    running = latest_run(c.checkpoint_dir)
    before = lines(running)
    with RunLock(running / RUN_LOCK, f"checkpoint_dir {running}"):  # as the training still running holds it
        with pytest.raises(UserError, match=f"checkpoint_dir {running} is in use by another run"):
            run(c, ModeOptions(sources=PRESET, resume="auto"))
    assert lines(running) == before and find_latest(running).name == "step-000000003"


def test_a_symlinked_step_folder_is_neither_resumed_from_nor_pruned(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path / "a", keep_last_checkpoints=1)
    other = train_config(tiny_root, tmp_path / "b", keep_last_checkpoints=1)
    assert run(other, ModeOptions(), stop_after_steps=6).exit_code == 130
    assert run(c, ModeOptions(), stop_after_steps=3).exit_code == 130
    target = find_latest(other.checkpoint_dir)
    planted = Path(c.checkpoint_dir) / "step-000000099"  # newer by name: a resume would have picked it
    planted.symlink_to(target.resolve(), target_is_directory=True)
    capsys.readouterr()
    assert run(c, ModeOptions(resume="auto")).exit_code == 0
    assert f"resuming from {Path(c.checkpoint_dir) / 'step-000000003'}" in capsys.readouterr().out
    assert planted.is_symlink() and (target / "manifest.json").is_file()  # pruning to one left it alone


def test_a_checkpoint_dir_holding_an_earlier_run_is_refused_before_anything_is_built(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(), stop_after_steps=3).exit_code == 130
    fresh_cache = c.replace(preprocess_cache_dir=str(tmp_path / "cache2"))
    with pytest.raises(UserError, match="already holds step checkpoints of an earlier run"):
        run(fresh_cache, ModeOptions())
    assert not (tmp_path / "cache2").exists()  # refused before the cache (or any model) was built


def test_an_explicit_checkpoint_dir_holding_run_folders_is_refused(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    assert run(c, ModeOptions(sources=PRESET), stop_after_steps=3).exit_code == 130
    with pytest.raises(UserError, match=f"checkpoint_dir {c.checkpoint_dir} holds run folders \\(version_0\\)"):
        run(c, ModeOptions())  # checkpoint_dir given: the root itself
