"""Bad inputs exit 2 with one paragraph naming the field or path; legal but unlikely values are said aloud."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from latentbridge import cli, modes
from latentbridge.config import MAX_SEED, Config, ConfigError
from latentbridge.config_sources import load_config, resolve_config
from latentbridge.errors import UserError

COMMAND = cli.app


def invoke(args: list[str]):
    return CliRunner().invoke(COMMAND, args, catch_exceptions=False)


def refused(args: list[str]) -> str:
    """The error paragraph of a run that must exit 2 without a traceback."""
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")
    return result.stderr


# ------------------------------------------------------------------------------------- config files

CONFIG_FILES = [
    ("run.yaml", b"seed: 1\nbatch_size: \xff\xfe\n", ["not UTF-8", "line 2", "run.yaml"]),
    ("run.json", b'{"seed": 1, "note": "caf\xe9"}', ["not UTF-8", "run.json"]),
    ("run.yaml", b"seed: 1\nbatch_size: 3\nseed: 2\n", ["'seed' appears more than once", "line 3", "run.yaml"]),
    ("run.json", b'{"seed": 1, "batch_size": 3, "seed": 2}', ["'seed' appear", "run.json"]),
]


@pytest.mark.parametrize("name,content,needles", CONFIG_FILES)
def test_a_config_file_that_is_not_utf8_or_repeats_a_key_exits_2(name, content, needles, tmp_path):
    file = tmp_path / name
    file.write_bytes(content)
    error = refused(["--mode", "config", "--config", str(file)])
    for needle in needles:
        assert needle in error


def test_a_utf8_bom_is_not_content(tmp_path):
    file = tmp_path / "run.json"
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps({"seed": 4}).encode())
    assert resolve_config(None, [str(file)], environ={}).config.seed == 4


@pytest.mark.parametrize("name,content", [("empty.yaml", ""), ("comments.yaml", "# nothing yet\n"),
                                          ("empty.json", "  \n")])
def test_an_empty_config_file_is_a_warning(name, content, tmp_path):
    file = tmp_path / name
    file.write_text(content)
    result = invoke(["--mode", "config", "--format", "json", "--config", str(file)])
    assert result.exit_code == 0, result.output
    assert f"Warning: Config file {file} (--config) is empty" in result.stderr
    assert json.loads(result.stdout) == Config().to_dict()
    with pytest.warns(UserWarning, match="is empty"):
        load_config(files=[file])


def test_a_config_file_with_values_gives_no_warning(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("seed: 3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(files=[file]).seed == 3


# ------------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("field", ["seed", "stop_latent_seed"])
@pytest.mark.parametrize("value", [-1, MAX_SEED + 1, 10**30])
def test_a_seed_outside_what_the_seeders_take_exits_2(field, value):
    error = refused(["--mode", "config", f"--{field.replace('_', '-')}", str(value)])
    assert f"{field} = {value}" in error and f"<= {MAX_SEED}" in error
    with pytest.raises(ConfigError, match=field):
        Config(**{field: value})


def test_the_seed_range_is_the_one_set_seed_takes():
    from accelerate.utils import set_seed

    set_seed(Config(seed=MAX_SEED).seed)  # python, numpy, torch: the largest seed the Config allows works
    with pytest.raises(ValueError):
        set_seed(MAX_SEED + 1)  # numpy's seeder refuses the next one: the bound is not tighter than needed


# ------------------------------------------------------------------------------------- output folders

FOLDER_FIELDS = {"checkpoint_dir": "train", "output_dir": "train", "preprocess_cache_dir": "preprocess"}


@pytest.mark.parametrize("field", FOLDER_FIELDS)
@pytest.mark.parametrize("where", ["is a file", "under a file"])
def test_an_output_folder_that_is_a_file_or_lies_under_one_exits_2(field, where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the other folders of the mode are created relative to it
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    path = blocker if where == "is a file" else blocker / "sub" / "dir"
    error = refused(["--mode", FOLDER_FIELDS[field], f"--{field.replace('_', '-')}", str(path)])
    assert f"{field} (--{field.replace('_', '-')}) is {path}" in error
    assert ("exists and is a file" if where == "is a file" else f"lies under {blocker}") in error
    assert blocker.read_text() == "keep me"


def test_a_folder_that_cannot_be_created_exits_2_with_the_reason(tmp_path):
    error = refused(["--mode", "preprocess", "--preprocess-cache-dir", "/proc/latentbridge/cache"])
    assert "preprocess_cache_dir (--preprocess-cache-dir)" in error and "cannot be created" in error


def test_the_folders_are_checked_from_python_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"output_dir \(--output-dir\)"):
        modes.run(Config(output_dir=str(tmp_path / "file")), mode="train")


# ------------------------------------------------------------------------------------- batch sizes


def test_a_batch_size_larger_than_the_split_is_said_naming_stage_split_and_size(small_root, tmp_path):
    from latentbridge.cached_latents import ensure_cache
    from latentbridge.modes.train import stage_data
    from latentbridge.recipe import plan
    from tests.factories import small_corpus_config

    config = small_corpus_config(small_root, tmp_path, batch_size=60_000, finetune_adapter_batch_size=4)
    cache = ensure_cache(config, log=lambda m: None).cache
    said: list[str] = []
    for stage in plan(config):
        stage_data(cache, config.seed, said.append)(stage)
    assert len(said) == 3  # finetune_adapter's own batch size (4) fits its split
    finetune = next(s for s in said if "finetune_middle" in s)
    assert "batch size 60000" in finetune and "48 examples" in finetune  # max_train_samples
    assert "dialogue/train" in finetune and "--finetune-middle-batch-size or --batch-size" in finetune


def test_a_batch_size_that_fits_is_not_mentioned(small_root, tmp_path):
    from latentbridge.cached_latents import ensure_cache
    from latentbridge.modes.train import stage_data
    from latentbridge.recipe import plan
    from tests.factories import small_corpus_config

    config = small_corpus_config(small_root, tmp_path, batch_size=8)
    cache = ensure_cache(config, log=lambda m: None).cache
    said: list[str] = []
    for stage in plan(config):
        stage_data(cache, config.seed, said.append)(stage)
    assert said == []
