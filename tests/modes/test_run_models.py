"""Which model infer and eval load without --checkpoint: the latest run's hand-off model trained on the config's
dataset (said on stderr), never a model of other data; a record without the trained column, or an eval dataset the
model never trained on, refused naming the model's dataset and columns (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions, eval as eval_mode, infer
from latentbridge.runs import new_run_folder
from tests.factories import assets_config, write_handoff

PRESET = {"checkpoint_dir": "preset tiny", "output_dir": "preset tiny"}


@pytest.fixture
def two_runs(tiny_root, tmp_path):
    """root/version_0: a model of the bundled dialogues; root/version_1 (the latest): one of `docs` (column body)."""
    root = tmp_path / "checkpoints"
    bundled = assets_config(tiny_root, checkpoint_dir=str(root), max_generation_length=4, batch_size=4)
    docs = bundled.replace(dataset_name=str(tmp_path / "docs"), dataset_input_field="body")
    for c in (bundled, docs):
        write_handoff(c.replace(checkpoint_dir=str(new_run_folder(root))))
    return root, bundled, docs


def test_infer_loads_the_latest_run_trained_on_the_configs_dataset_and_says_which(two_runs, tmp_path, capsys):
    root, bundled, docs = two_runs
    assert infer.run(bundled, ModeOptions(sources=PRESET, text="Anna: lunch at 1? Ben: sure")).exit_code == 0
    err = capsys.readouterr().err
    assert f"Loading {root / 'version_0' / 'best_model.pt'}: the latest run under {root} trained on" in err
    records = tmp_path / "new_docs.jsonl"
    records.write_text(json.dumps({"body": "def add(a, b): return a + b"}) + "\n")
    assert infer.run(docs, ModeOptions(sources=PRESET, input_file=records)).exit_code == 0
    assert f"Loading {root / 'version_1' / 'best_model.pt'}" in capsys.readouterr().err


def test_infer_refuses_records_without_the_trained_column_naming_the_models_data(two_runs, tmp_path):
    root, bundled, docs = two_runs
    records = tmp_path / "dialogues.jsonl"
    records.write_text(json.dumps({"dialogue": "Anna: hi"}) + "\n")
    with pytest.raises(UserError, match=f"trained on dataset {tmp_path / 'docs'} \\(input column body"):
        infer.run(docs, ModeOptions(sources=PRESET, input_file=records))


def test_no_run_trained_on_the_dataset_is_an_error_naming_what_the_runs_trained_on(two_runs, tmp_path):
    root, bundled, _ = two_runs
    with pytest.raises(UserError, match=r"No run under .* of dataset elsewhere \(its runs trained on: version_1: "):
        infer.run(bundled.replace(dataset_name="elsewhere"), ModeOptions(sources=PRESET, text="hi"))


def test_eval_refuses_a_dataset_the_model_was_not_trained_on(two_runs, tmp_path):
    root, bundled, docs = two_runs
    model = root / "version_0" / "best_model.pt"
    sources = {**PRESET, "dataset_name": "command line"}
    with pytest.raises(UserError, match=f"the model {model} was trained on dataset {bundled.dataset_name} .*not on "
                                        f"{docs.dataset_name}"):
        eval_mode.run(docs, ModeOptions(sources=sources, checkpoint=model))
