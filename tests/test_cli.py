"""The generated CLI and the source precedence, driven like a user drives them."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from latentbridge import cli, modes
from latentbridge.config import PRESETS, Config, ConfigError, base_type, field_meta, field_names, field_types
from latentbridge.config_sources import env_var, resolve_config

ROOT = Path(__file__).resolve().parent.parent
APP = cli.app


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(APP, args, env=env, catch_exceptions=False)


def resolved(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = invoke(["--mode", "config", "--format", "json", *args], env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# A field whose other value is valid only with another field set (a cross-field rule) -> that setting.
COMPANIONS = {"cache_use_embeddings_for_training": {"cache_store_text": True}, "warmup_ratio": {"warmup_steps": 0},
              "min_lr_ratio": {"lr_scheduler_type": "cosine_with_min_lr"}, "best_model_metric": {"eval_rouge_samples": 2}}
EXAMPLES = {"resume_allow_changes": "learning_rate,seed"}  # values no generic candidate fits


def alternative_value(name: str) -> Any:
    """A valid value of field `name` that differs from its default (a one-choice field keeps its one)."""
    default = Config.__dataclass_fields__[name].default
    kind = base_type(field_types()[name])
    choices = field_meta(name)["choices"]
    if name in EXAMPLES:
        return EXAMPLES[name]
    if len(choices) == 1:
        return choices[0]
    if choices:
        candidates = [c for c in choices if c != default]
    elif kind is bool:
        candidates = [not default]
    elif kind is int:
        candidates = [2, 8, 1, 64] if default is None else [default * 2, default + 2, 1, 0]
    elif kind is float:
        candidates = [0.5, 0.25] if default is None else [default / 2, 0.5, 2.0]
    else:
        candidates = [f"custom_{name}.pt", f"custom_{name}", f"{{custom_{name}}}"]  # a file name, or a template's column
    for candidate in candidates:
        if candidate != default:
            try:
                Config(**{name: candidate, **COMPANIONS.get(name, {})})
                return candidate
            except ConfigError:
                continue
    raise AssertionError(f"no alternative value for {name}")


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def flag_args(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")]
    return [flag, as_text(value)]


@pytest.mark.parametrize("name", field_names())
def test_every_field_is_set_by_flag_env_and_file(name, tmp_path):
    value = alternative_value(name)
    settings = {name: value, **COMPANIONS.get(name, {})}
    assert resolved([arg for k, v in settings.items() for arg in flag_args(k, v)])[name] == value
    assert resolved([], env={env_var(k): as_text(v) for k, v in settings.items()})[name] == value
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(settings))
    assert resolved(["--config", str(file)])[name] == value


LEVELS = ["default", "preset", "file", "env", "cli"]


@pytest.mark.parametrize("top", LEVELS)
def test_precedence_defaults_preset_file_env_cli(top, tmp_path):
    """batch_size is set at every level up to `top`; the highest level set wins."""
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"batch_size": 3}))
    args, env = [], {}
    if LEVELS.index(top) >= 1:
        args += ["--preset", "tiny"]  # tiny sets batch_size 32
    if LEVELS.index(top) >= 2:
        args += ["--config", str(file)]
    if LEVELS.index(top) >= 3:
        env[env_var("batch_size")] = "4"
    if LEVELS.index(top) >= 4:
        args = ["--batch-size", "5", *args]  # before --preset: order does not matter
    expected = {"default": 30, "preset": 32, "file": 3, "env": 4, "cli": 5}[top]
    assert resolved(args, env)["batch_size"] == expected


def test_later_config_files_win(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yml"
    first.write_text("batch_size: 3\nseed: 7\n")
    second.write_text("batch_size: 4\n")
    values = resolved(["--config", str(first), "--config", str(second)])
    assert (values["batch_size"], values["seed"]) == (4, 7)


def test_yaml_scientific_notation_is_a_float(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("learning_rate: 5e-5\n")  # PyYAML reads this as the string '5e-5'
    assert resolved(["--config", str(file)])["learning_rate"] == 5e-05


def test_sources_are_recorded():
    result = resolve_config("tiny", environ={env_var("seed"): "3"}, cli_values={"batch_size": "2"})
    assert result.sources["batch_size"] == "command line"
    assert result.sources["seed"] == "environment"
    assert result.sources["latent_dim"] == "preset tiny"
    assert result.sources["top_k"] == "default"


@pytest.mark.parametrize("text,expected", [("yes", True), ("on", True), ("1", True), ("False", False),
                                           ("off", False), ("0", False)])
def test_bool_grammar_from_env(text, expected):
    assert resolved([], env={env_var("use_tui"): text})["use_tui"] is expected


def test_bool_flags_pair():
    assert resolved(["--no-use-tui"])["use_tui"] is False
    assert resolved(["--no-use-tui", "--use-tui"])["use_tui"] is True


@pytest.mark.parametrize("source", ["cli", "env", "file"])
def test_optional_fields_accept_none(source, tmp_path):
    base = ["--preset", "tiny", "--max-train-samples", "5"] if source != "cli" else ["--max-train-samples", "5"]
    if source == "cli":
        assert resolved(base + ["--max-train-samples", "none"])["max_train_samples"] is None
    elif source == "env":
        assert resolved(["--pretrain-middle-batch-size", "none"],
                        env={env_var("tiny_assets_dir"): "none"})["tiny_assets_dir"] is None
    else:
        file = tmp_path / "run.yaml"
        file.write_text("pretrain_adapter_max_samples_arxiv: null\n")
        assert resolved(["--config", str(file)])["pretrain_adapter_max_samples_arxiv"] is None


def test_choice_fields_list_their_choices():
    result = invoke(["--mode", "config", "--attn-implementation", "flash3"])
    assert result.exit_code == 2
    assert "attn_implementation = 'flash3'" in result.stderr
    assert "flash_attention_2, sdpa, eager" in result.stderr
    help_text = invoke(["--help"]).stdout
    assert "flash_attention_2|sdpa|eager" in help_text


BAD_INPUTS = [
    (["--learning-rate", "fast"], {}, None, "learning_rate"),
    (["--batch-size", "2.5"], {}, None, "batch_size"),
    (["--top-p", "1.5"], {}, None, "top_p"),
    (["--device", "tpu"], {}, None, "device"),
    (["--middle-num-heads", "7"], {}, None, "middle_num_heads"),
    (["--seed", "none"], {}, None, "seed"),
    ([], {"LATENTBRIDGE_BATCH_SIZE": "many"}, None, "batch_size"),
    ([], {"LATENTBRIDGE_LERNING_RATE": "1"}, None, "LATENTBRIDGE_LEARNING_RATE"),
    ([], {}, "learnng_rate: 1\n", "did you mean learning_rate"),
    ([], {}, "batch_size: [1, 2]\n", "batch_size"),
    ([], {}, "- just\n- a list\n", "expected a mapping"),
    ([], {}, "batch_size: {\n", "not valid YAML"),
    (["--preset", "huge"], {}, None, "huge"),
    (["--config", "missing.yaml"], {}, None, "missing.yaml"),
    (["--config", "run.toml"], {}, None, ".json, .yaml or .yml"),
]


@pytest.mark.parametrize("args,env,file_text,needle", BAD_INPUTS)
def test_bad_input_exits_2_naming_the_field(args, env, file_text, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if file_text is not None:
        (tmp_path / "bad.yaml").write_text(file_text)
        args = [*args, "--config", "bad.yaml"]
    result = invoke(["--mode", "config", *args], env)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_column_mapping_and_a_multiline_template_from_flags_env_and_file(tmp_path):
    template = "{title}\n{body}"
    flags = ["--dataset-input-template", template, "--dataset-target-field", "summary_line"]
    assert resolved(flags)["dataset_input_template"] == template
    env = {env_var("dataset_input_template"): template, env_var("dataset_target_field"): "summary_line"}
    assert resolved([], env=env)["dataset_target_field"] == "summary_line"
    file = tmp_path / "run.yaml"
    file.write_text('dataset_input_template: "{title}\\n{body}"\ndataset_target_field: summary_line\n')
    assert resolved(["--config", str(file)])["dataset_input_template"] == template  # YAML's \n is a newline
    bad = invoke(["--mode", "config", "--dataset-input-template", "{title"])
    assert bad.exit_code == 2 and "--dataset-input-template" in bad.stderr


def test_unknown_flag_suggests_the_field():
    result = invoke(["--learing-rate", "1"])
    assert result.exit_code == 2
    assert "--learning-rate" in result.output


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_saved_config_loads_back_equal(suffix, tmp_path):
    saved = tmp_path / f"resolved{suffix}"
    result = invoke(["--mode", "config", "--preset", "tiny", "--learning-rate", "3e-4", "--no-use-tui",
                     "--max-train-samples", "17", "--save-config", str(saved)])
    assert result.exit_code == 0, result.output
    original = resolve_config("tiny", environ={}, cli_values={"learning_rate": "3e-4", "use_tui": False,
                                                             "max_train_samples": "17"}).config
    # checkpoint_dir and output_dir left to the preset say where runs go, not one run's folder: not saved, so
    # every training from the file gets a run folder of its own (docs/pipeline.md, "Run folders")
    loaded = resolve_config(None, [str(saved)], environ={})
    assert loaded.config == original.replace(checkpoint_dir=Config().checkpoint_dir, output_dir=Config().output_dir)
    assert (loaded.sources["checkpoint_dir"], loaded.sources["output_dir"]) == ("default", "default")


def test_a_saved_config_keeps_run_folders_that_were_given(tmp_path):
    saved = tmp_path / "resolved.yaml"
    result = invoke(["--mode", "config", "--preset", "tiny", "--checkpoint-dir", "mine", "--save-config", str(saved)])
    assert result.exit_code == 0, result.output
    loaded = resolve_config(None, [str(saved)], environ={}).config
    assert (loaded.checkpoint_dir, loaded.output_dir) == ("mine", Config().output_dir)


def test_config_table_shows_sources():
    result = invoke(["--mode", "config", "--preset", "tiny", "--seed", "5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    seed_row = next(line for line in result.stdout.splitlines() if " seed " in line)
    assert "5" in seed_row and "command line" in seed_row


def test_config_table_at_80_columns_keeps_values_and_sources_whole(tmp_path):
    saved = tmp_path / "run.yaml"
    saved.write_text("seed: 7\n")
    result = invoke(["--mode", "config", "--preset", "tiny", "--config", str(saved), "--learning-rate", "5e-5"],
                    env={"COLUMNS": "80", "LATENTBRIDGE_BATCH_SIZE": "8"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80

    def row(field: str) -> str:
        return next(line for line in lines if f"│ {field} " in line)

    assert "'transformer'" in row("middle_architecture") and "default" in row("middle_architecture")
    assert "5e-05" in row("learning_rate") and "command line" in row("learning_rate")
    assert "8" in row("batch_size") and "environment" in row("batch_size")
    assert "preset tiny" in row("latent_dim")
    assert any("Training Hyperparameters" in line for line in lines)  # the section headings


def test_config_table_shows_the_effective_precision_next_to_the_flags():
    rows = invoke(["--mode", "config", "--preset", "tiny", "--use-bf16"], env={"COLUMNS": "250"}).stdout.splitlines()
    names = [line.split("│")[1].strip() if line.count("│") > 2 else "" for line in rows]
    row = rows[names.index("precision (effective)")]
    assert names.index("precision (effective)") == names.index("use_bf16") + 1
    assert "fp32" in row and "the device is cpu" in row
    gpu = invoke(["--mode", "config", "--use-bf16"], env={"COLUMNS": "250"}).stdout
    assert "bf16 on a device with bf16, else fp32" in gpu and "--mode doctor" in gpu


def test_help_lists_every_flag_and_the_presets():
    help_text = invoke(["--help"], env={"COLUMNS": "200"}).stdout
    for name in field_names():
        assert "--" + name.replace("_", "-") in help_text
    assert "tiny:" in help_text and "base:" in help_text


LIGHT_PATH_SCRIPT = """
import runpy, sys
sys.argv = ["main.py", *sys.argv[1:]]
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "transformers", "peft", "matplotlib") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code))
"""


@pytest.mark.parametrize("args,code", [(["--help"], 0), (["--mode", "config", "--preset", "tiny"], 0),
                                       (["--mode", "config", "--format", "yaml"], 0),
                                       (["--mode", "config", "--batch-size", "0"], 2)])
def test_light_paths_import_neither_torch_nor_transformers_nor_peft_nor_matplotlib(args, code):
    run = subprocess.run([sys.executable, "-c", LIGHT_PATH_SCRIPT, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert f"HEAVY= CODE={code}" in run.stdout, run.stdout + run.stderr


def test_user_error_in_a_real_process_has_no_traceback():
    run = subprocess.run([sys.executable, "main.py", "--mode", "config", "--top-k", "-1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "top_k = -1 (from command line)" in run.stderr
    assert "Traceback" not in run.stderr


def test_torch_num_threads_is_applied_before_the_mode_runs(monkeypatch):
    import importlib.machinery
    import types

    import torch

    seen = {}
    fake = types.ModuleType("fake_mode")
    fake.__spec__ = importlib.machinery.ModuleSpec("fake_mode", None)
    fake.run = lambda config, options: seen.setdefault("threads", torch.get_num_threads()) and modes.RunResult("doctor")
    monkeypatch.setitem(sys.modules, "fake_mode", fake)
    monkeypatch.setitem(modes.MODE_MODULES, "doctor", "fake_mode")
    before = torch.get_num_threads()
    try:
        result = invoke(["--mode", "doctor", "--torch-num-threads", "3"])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert seen["threads"] == 3


# ------------------------------------------------------------------------------------------ the Typer app

def command_params() -> dict[str, Any]:
    import typer.main

    return {param.name: param for param in typer.main.get_command(cli.app).params}


def test_every_field_is_one_option_in_the_panel_of_its_section():
    params = command_params()
    for name in field_names():
        param = params[name]
        flag = "--" + name.replace("_", "-")
        assert param.opts == [flag] and param.rich_help_panel == field_meta(name)["section"]
        if base_type(field_types()[name]) is bool:
            assert param.secondary_opts == ["--no-" + name.replace("_", "-")]
    mode_options = [name for name in params if name not in field_names() and params[name].expose_value]
    assert mode_options[0] == "mode" and {params[name].rich_help_panel for name in mode_options} == {cli.RUN_PANEL}
    assert len(params) == len(field_names()) + len(mode_options) + 2  # + --install-completion, --show-completion


def test_plain_help_lists_the_mode_panel_first_and_the_sections_in_order():
    help_text = invoke(["--help"], env={"COLUMNS": "200"}).stdout
    sections = [line[:-1] for line in help_text.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    expected = list(dict.fromkeys(field_meta(name)["section"] for name in field_names()))
    assert sections == [cli.RUN_PANEL, *expected, cli.HELP_PANEL]
    assert "[default: 256]" in help_text and "(allowed: > 0 and <= 65536)" in help_text  # latent_dim's default and bound


def test_unknown_flag_suggests_the_closest_option_only():
    result = invoke(["--learning-rat", "1"])
    assert result.exit_code == 2
    assert "--learning-rate" in result.stderr and "--training-phase" not in result.stderr


HELP_SCRIPT = "import sys; from latentbridge.cli import main; sys.argv[0] = {argv0!r}; main()"
BOX = set("╭╮╰╯│─")


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """What `python *args` draws on a pseudo-terminal (stdout is a tty, as in a person's shell)."""

    leader, follower = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=follower, stderr=subprocess.DEVNULL,
                               env={**base, "COLUMNS": "100", **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the writer closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())  # colours and styles off


@pytest.mark.parametrize("env,panels", [({"TERM": "xterm-256color"}, True),
                                        ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
                                        ({"TERM": "dumb"}, False)])
def test_help_draws_rich_panels_only_on_a_styled_terminal(env, panels):
    drawn = on_a_terminal(["main.py", "--help"], env)
    assert bool(BOX & set(drawn)) is panels
    assert ("╭─ Mode and sources" in drawn) is panels
    assert "--learning-rate" in drawn


def test_piped_help_is_plain_and_the_same_from_main_py_and_the_console_script():
    piped = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    script = subprocess.run([sys.executable, "-c", HELP_SCRIPT.format(argv0="/usr/local/bin/latentbridge"), "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and not BOX & set(piped.stdout)
    assert piped.stdout.startswith("Usage: latentbridge [OPTIONS]") and piped.stdout == script.stdout


def complete(words: str, shell: str = "bash") -> list[str]:
    """The completions offered for the command line `words` (the last word is being typed)."""
    env = {"_LATENTBRIDGE_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env |= {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    else:
        env |= {"_TYPER_COMPLETE_ARGS": words}
    result = CliRunner().invoke(cli.app, [], env=env, prog_name="latentbridge")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_offers_options_modes_presets_and_choices():
    assert complete("latentbridge --learning-") == ["--learning-rate"]
    assert complete("latentbridge --mode ") == list(modes.MODE_MODULES)
    assert complete("latentbridge --preset ") == list(PRESETS)
    assert complete("latentbridge --attn-implementation s") == ["sdpa"]


@pytest.mark.parametrize("option", ["--config", "--input-file", "--save-config"])
def test_completion_of_a_path_option_offers_files(option, name_the_shell):
    """Typer leaves paths to the shell: zsh is told `_files`, bash gets no words and its completion script falls
    back to file names (`complete -o default`); a value that is not a path gets words, not `_files`."""
    assert complete(f"latentbridge {option} ", shell="zsh") == ["_files"]
    assert complete(f"latentbridge {option} ") == []
    assert complete("latentbridge --mode ", shell="zsh") != ["_files"]
    assert "complete -o default" in show_completion("bash")


@pytest.fixture
def name_the_shell(monkeypatch):
    """Typer's own switch (read when the command is built) for naming the shell instead of detecting the one
    that runs the tests: `--show-completion bash`."""
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")


def show_completion(shell: str, home: Path | None = None, install: bool = False) -> str:
    args = ["--install-completion" if install else "--show-completion", shell]
    result = CliRunner().invoke(cli.app, args, env={"HOME": str(home)} if home else None, prog_name="latentbridge")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("shell,script,rc_file", [("bash", ".bash_completions/latentbridge.sh", ".bashrc"),
                                                  ("zsh", ".zfunc/_latentbridge", ".zshrc")])
def test_show_and_install_completion(shell, script, rc_file, tmp_path, name_the_shell):
    shown = show_completion(shell)
    assert "_LATENTBRIDGE_COMPLETE=complete_" + shell in shown
    assert show_completion(shell, tmp_path, install=True).startswith(f"{shell} completion installed in")
    assert (tmp_path / script).read_text().strip() == shown.strip()
    assert (tmp_path / rc_file).is_file()


def test_completion_imports_neither_torch_nor_transformers():
    env = {"_LATENTBRIDGE_COMPLETE": "complete_bash", "COMP_WORDS": "latentbridge --learning-", "COMP_CWORD": "1"}
    run = subprocess.run([sys.executable, "-c", LIGHT_PATH_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, **env})
    assert "--learning-rate" in run.stdout and "HEAVY= CODE=0" in run.stdout, run.stdout + run.stderr


def test_the_documented_mounting_example_runs(tmp_path):
    """docs/cli.md's example: another Typer program adds latentbridge's app beside its own command."""
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    (tmp_path / "tool.py").write_text(re.search(r"```python\n(.*?)```", doc, flags=re.S).group(1))
    tool = [sys.executable, str(tmp_path / "tool.py")]
    listed = subprocess.run([*tool, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0 and "hello" in listed.stdout and "latentbridge" in listed.stdout
    config = subprocess.run([*tool, "latentbridge", "--mode", "config", "--format", "json", "--preset", "tiny"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert config.returncode == 0 and json.loads(config.stdout)["latent_dim"] == 64, config.stderr
    bad = subprocess.run([*tool, "latentbridge", "--mode", "config", "--top-k", "-1"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "top_k = -1 (from command line)" in bad.stderr
