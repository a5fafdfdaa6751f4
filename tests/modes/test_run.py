"""`latentbridge.run(config, mode=...)` returns what the mode did (modes.RunResult) and raises UserError for bad
input; the CLI exits with the result's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import latentbridge
from latentbridge.modes import RunResult
from tests.factories import train_config


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory) -> tuple[latentbridge.Config, RunResult]:
    """The whole pipeline at the smallest caps (one batch of 8 per stage), run once for the module."""
    work = tmp_path_factory.mktemp("run-result")
    config = train_config(tiny_root, work).replace(max_train_samples=8, pretrain_middle_max_samples=8,
                                                   pretrain_adapter_max_samples=8, max_generation_length=4,
                                                   eval_max_samples=4)
    return config, latentbridge.run(config, mode="train")


def test_train_returns_the_handoff_model_and_the_summary(trained):
    config, result = trained
    assert result.mode == "train" and result.exit_code == 0 and not result.interrupted
    assert result.model_path == Path(config.checkpoint_dir) / config.handoff_best_model_filename
    assert result.model_path.is_file()
    assert result.summary == json.loads((Path(config.output_dir) / "summary.json").read_text(encoding="utf-8"))


def test_preprocess_returns_the_cache_it_reused(trained, capsys):
    config, _ = trained
    result = latentbridge.run(config, mode="preprocess")
    assert result.exit_code == 0 and result.cache_dir.is_dir()
    assert result.cache_dir.is_relative_to(config.preprocess_cache_dir)
    assert f"Cache reused: {result.cache_dir}" in capsys.readouterr().out


def test_infer_returns_one_output_per_text(trained, capsys):
    config, train = trained
    result = latentbridge.run(config, mode="infer", text="Anna: lunch at 1? Ben: sure")
    assert result.exit_code == 0 and result.model_path == train.model_path
    assert len(result.outputs) == 1 and isinstance(result.outputs[0], str)
    assert capsys.readouterr().out.strip() == result.outputs[0].strip()  # what the CLI prints


def test_eval_returns_the_report_it_wrote(trained, tmp_path):
    config, train = trained
    result = latentbridge.run(config, mode="eval", output_file=tmp_path / "eval.json")
    assert result.exit_code == 0 and result.model_path == train.model_path
    assert result.report == json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert result.report["split"] == config.test_split and result.report["n_examples"] == 4


def test_bad_input_raises_user_error(trained):
    config, _ = trained
    with pytest.raises(latentbridge.UserError, match="expected one of preprocess, train"):
        latentbridge.run(config, mode="trian")
    with pytest.raises(latentbridge.UserError, match="chekpoint is not an option of a mode; expected some of"):
        latentbridge.run(config, mode="infer", chekpoint="model.pt")
    with pytest.raises(latentbridge.UserError, match="No trained model at .*missing.pt"):
        latentbridge.run(config, mode="infer", text="hi", checkpoint=Path(config.checkpoint_dir) / "missing.pt")


def test_the_config_comes_first():
    with pytest.raises(TypeError, match=r"run\(config, mode=\.\.\.\) takes a Config first"):
        latentbridge.run("train", latentbridge.Config())


@pytest.mark.parametrize(("result", "code"), [
    (RunResult("train"), 0), (RunResult("train", interrupted=True), 130), (RunResult("infer", refused=1), 2),
    (RunResult("doctor", problems=("data / train: missing",)), 1)])
def test_the_exit_code_the_cli_gives_each_result(result, code):
    assert result.exit_code == code


def test_each_mode_option_is_declared_once_and_becomes_a_flag():
    from dataclasses import fields

    from latentbridge.cli import mode_parameters
    from latentbridge.modes import OPTION_NAMES, ModeOptions

    flags = {p.name: p.default for p in mode_parameters()}
    declared = {f.name: f for f in fields(ModeOptions)}
    assert set(OPTION_NAMES) == set(declared) - {"sources"} and set(OPTION_NAMES) <= set(flags)
    for name in OPTION_NAMES:
        assert flags[name].help == declared[name].metadata["help"] and flags[name].default == declared[name].default
