"""Config values at the edges: absurd sizes, floats for ints, zero heads, missing files, every mistake in one
report, and a config holding a huge value printed quickly and shortened."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from latentbridge import cli
from latentbridge.config import Config, ConfigError, base_type, field_meta, field_names, field_types
from latentbridge.config_sources import resolve_config

COMMAND = cli.app


def refused(args: list[str]) -> str:
    """The error paragraph of a run that must exit 2 without a traceback."""
    result = CliRunner().invoke(COMMAND, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("Error: ")
    return result.stderr


def test_zero_heads_is_a_validation_error_not_a_division_by_zero():
    with pytest.raises(ConfigError) as error:
        Config(middle_num_heads=0, adapter_num_heads=0)
    assert {p.field for p in error.value.problems} == {"middle_num_heads", "adapter_num_heads"}


@pytest.mark.parametrize("flag,value", [("--batch-size", str(10**30)), ("--max-seq-len", "1000000000"),
                                        ("--prefix-len", "100000000")])
def test_sizes_no_real_run_could_use_are_refused(flag, value):
    error = refused(["--mode", "config", flag, value])
    assert flag in error and "<=" in error


def test_every_int_field_has_an_upper_bound_stated_in_its_help():
    ints = [name for name in field_names() if base_type(field_types()[name]) is int]
    assert ints and all({"le", "lt"} & set(field_meta(name)["bounds"]) for name in ints)
    help_text = CliRunner().invoke(COMMAND, ["--help"], terminal_width=200).output
    assert "allowed: > 0 and <= 65536" in help_text  # batch_size


@pytest.mark.parametrize("name,text", [("run.yaml", "batch_size: 1e30\n"), ("run.yaml", "batch_size: 32.0\n"),
                                       ("run.json", '{"batch_size": 32.0}')])
def test_a_float_for_an_int_field_in_a_file_is_an_error(name, text, tmp_path):
    file = tmp_path / name
    file.write_text(text)
    error = refused(["--mode", "config", "--config", str(file)])
    assert "batch_size" in error and "expected an int" in error


def test_a_config_file_reports_unknown_keys_and_bad_values_together(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("batch_sise: 3\nseed: -1\nlearning_rate: fast\n")
    error = refused(["--mode", "config", "--config", str(file)])
    assert "3 problems" in error
    assert "batch_sise" in error and "did you mean batch_size" in error
    assert "seed = -1" in error and "learning_rate = 'fast'" in error


@pytest.mark.parametrize("flag,typo,meant", [("--device", "cdua", "cuda"), ("--lr-scheduler-type", "cosin", "cosine"),
                                             ("--attn-implementation", "spda", "sdpa")])
def test_a_misspelt_choice_gets_a_did_you_mean(flag, typo, meant):
    assert f"did you mean {meant}?" in refused(["--mode", "config", flag, typo])


def test_types_are_named_with_their_article():
    error = refused(["--mode", "config", "--batch-size", "many"])
    assert "expected an int" in error and "a int" not in error


def test_a_missing_mix_file_is_refused_by_config_mode(tmp_path):
    error = refused(["--mode", "config", "--pretrain-mix", str(tmp_path / "gone.yaml")])
    assert "pretrain_mix" in error and "gone.yaml does not exist" in error


def test_save_config_refuses_an_extension_it_does_not_write(tmp_path):
    out = tmp_path / "out.txt"
    error = refused(["--mode", "config", "--save-config", str(out)])
    assert "out.txt" in error and ".json, .yaml or .yml" in error
    assert not out.exists()


def test_a_huge_value_is_cut_in_the_table_and_whole_in_json(tmp_path):
    from rich.console import Console

    from latentbridge.modes.show_config import config_table

    file = tmp_path / "big.json"
    file.write_text(json.dumps({"run_name": "x" * 1_000_000}))
    resolved = resolve_config(None, [str(file)], environ={})
    console = Console(file=io.StringIO(), width=100)
    console.print(config_table(resolved.config, resolved.sources))
    table = console.file.getvalue()
    assert len(table) < 50_000 and "values over 120 characters are cut" in table
    result = CliRunner().invoke(COMMAND, ["--mode", "config", "--format", "json", "--config", str(file)])
    assert json.loads(result.stdout)["run_name"] == "x" * 1_000_000
