"""`--mode infer` end to end on a hand-off file of a freshly initialised tiny model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latentbridge import cli
from latentbridge.config_sources import resolve_config
from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions, infer
from tests.factories import Handoff, assets_config, write_handoff

APP = cli.app
MAIN = Path(__file__).resolve().parents[2] / "main.py"


def run_cli(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(APP, ["--mode", "infer", *args], input=stdin, catch_exceptions=False)


def ck(h: Handoff) -> list[str]:
    return ["--preset", "tiny", "--checkpoint", str(h.path)]


def test_text_in_summary_out(handoff):
    result = run_cli([*ck(handoff), "--text", "Anna: lunch at 1? Ben: sure"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1


def test_file_in_jsonl_out_in_order(handoff, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "dialogue": f"Anna: meet at {i}? Ben: ok"}) + "\n"
                           for i in range(20)))
    out = tmp_path / "out.jsonl"
    result = run_cli([*ck(handoff), "--input-file", str(src), "--output-file", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(20)]  # 20 texts: two batches of 16
    assert all(set(r) == {"id", "input", "summary"} for r in rows)


def test_jsonl_text_is_read_like_the_training_input(handoff, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "qualname": f"f{i}", "body": "Adds two numbers."}) + "\n"
                           for i in range(3)))
    out = tmp_path / "out.jsonl"
    template = ["--dataset-input-template", "{qualname}: {body}"]
    result = run_cli([*ck(handoff), *template, "--input-file", str(src), "--output-file", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["input"] for line in out.read_text().splitlines()] == [
        f"f{i}: Adds two numbers." for i in range(3)]
    result = run_cli([*ck(handoff), "--dataset-input-field", "body", "--input-file", str(src)])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    err = _error(run_cli([*ck(handoff), "--dataset-input-field", "text", "--input-file", str(src)]))
    assert "docs.jsonl line 1" in err and "'text'" in err and "'body'" in err and "--dataset-input-field" in err


def test_the_checkpoint_names_the_input_column(handoff, tmp_path):
    from latentbridge.evaluation.io import read_inputs, with_texts
    from latentbridge.evaluation.trained_model import load_handoff
    from latentbridge.modes.infer import input_columns

    trained = handoff.config.replace(dataset_input_field="body", checkpoint_dir=str(tmp_path / "ck"))
    path = write_handoff(trained)
    given = resolve_config("tiny", cli_values={})  # nothing about columns on this command line
    model = load_handoff(given.config, path, given.sources)
    assert model.config.dataset_input_field == "body"
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"body": "Adds two numbers.", "text": "not this one"}) + "\n")
    items = read_inputs(None, src, columns=None)  # the records, read before the model loads
    assert [i.text for i in with_texts(items, input_columns(model))] == ["Adds two numbers."]


def test_stdin_one_text_per_line(handoff):
    result = run_cli(ck(handoff), stdin="Anna: hi Ben: hey\nTom: late? Mia: yes\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_the_default_path_is_checkpoint_dir_handoff(handoff):
    result = run_cli(["--preset", "tiny", "--checkpoint-dir", handoff.config.checkpoint_dir, "--text", "Anna: hi"])
    assert result.exit_code == 0, result.output


def test_a_seed_makes_samples_reproducible(handoff):
    args = [*ck(handoff), "--text", "Anna: lunch at 1? Ben: sure", "--do-sample", "--temperature", "1.5",
            "--top-k", "0", "--top-p", "1.0", "--max-generation-length", "12"]
    runs = [run_cli([*args, "--seed", str(s)]).stdout for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_only_sampling_flags_override_the_checkpoint_config(handoff):
    given = resolve_config("tiny", cli_values={"max_generation_length": "3", "latent_dim": "32", "seed": "5"})
    from latentbridge.evaluation.trained_model import load_handoff

    loaded = load_handoff(given.config, handoff.path, given.sources)
    assert loaded.config.max_generation_length == 3 and loaded.config.seed == 5
    assert loaded.config.latent_dim == handoff.config.latent_dim and loaded.ignored == ("latent_dim",)
    from latentbridge.recipe import sampling_spec

    assert sampling_spec(loaded.config).max_new_tokens == 3


# ------------------------------------------------------------------------------------- streaming


def test_a_stream_answers_each_line_in_order_and_goes_on_after_a_refused_one(handoff):
    requests = io.StringIO('{"id": "a", "dialogue": "Anna: lunch at 1? Ben: sure"}\n\n{broken\nTom: late? Mia: yes\n')
    answers = io.StringIO()
    code = infer.answer_stream(handoff.config, ModeOptions(checkpoint=handoff.path), requests, answers).exit_code
    records = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert code == 2  # one request was refused
    assert [r["id"] for r in records] == ["a", "1", "2"]  # the blank line is no request
    assert "summary" in records[0] and "not valid JSON" in records[1]["error"] and "summary" in records[2]
    one_shot = run_cli([*ck(handoff), "--text", "Tom: late? Mia: yes"]).stdout.strip()
    assert records[2]["summary"].replace("\n", " ") == one_shot  # same seed, same answer as a one-shot run


def test_a_stream_echoes_each_id_as_given_on_answers_and_errors(handoff):
    requests = io.StringIO('{"id": 44, "dialogue": "Anna: lunch? Ben: sure"}\n'
                           '{"id": "third", "text_missing": "x"}\n'
                           '{"id": [1, "a"], "dialogue": "   "}\n'
                           '{"id": 2.5, "dialogue": "Tom: late? Mia: yes"}\n')
    answers = io.StringIO()
    assert infer.answer_stream(handoff.config, ModeOptions(checkpoint=handoff.path), requests, answers).exit_code == 2
    records = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert [r["id"] for r in records] == [44, "third", [1, "a"], 2.5]
    assert "summary" in records[0] and "error" in records[1] and "error" in records[2] and "summary" in records[3]


def test_a_stream_answers_each_line_before_the_next_is_sent(handoff):
    """A real process fed through a pipe: each answer arrives while its writer still holds the pipe open, so the
    model is loaded once and every answer is flushed as soon as it is made."""
    process = subprocess.Popen([sys.executable, str(MAIN), "--mode", "infer", "--preset", "tiny", "--checkpoint",
                                str(handoff.path), "--input-file", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        answers = []
        for ident in ("first", "second", "third"):
            process.stdin.write(json.dumps({"id": ident, "dialogue": f"Anna: {ident} lunch? Ben: sure"}) + "\n")
            process.stdin.flush()
            answers.append(json.loads(process.stdout.readline()))
        process.stdin.close()
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        process.kill()
    assert [a["id"] for a in answers] == ["first", "second", "third"]
    assert all(a["summary"] for a in answers)


def test_a_stream_refuses_an_output_file(handoff, tmp_path):
    result = run_cli([*ck(handoff), "--input-file", "-", "--output-file", str(tmp_path / "out.jsonl")], stdin="x\n")
    assert "--output-file" in _error(result)


# ------------------------------------------------------------------------------------- bad input


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_empty_text_exits_2(handoff):
    assert "empty" in _error(run_cli([*ck(handoff), "--text", "  "]))


def test_very_long_text_exits_2(handoff):
    long = "Anna: " + "blah " * 5000
    assert "too long" in _error(run_cli([*ck(handoff), "--text", long]))


def test_missing_checkpoint_exits_2(tmp_path):
    err = _error(run_cli(["--preset", "tiny", "--checkpoint-dir", str(tmp_path), "--text", "Anna: hi"]))
    assert "No trained model" in err and "--mode train" in err


def test_torn_checkpoint_exits_2(handoff, tmp_path):
    torn = tmp_path / "best_model.pt"
    torn.write_bytes(handoff.path.read_bytes()[:-100])
    assert "torn" in _error(run_cli(["--preset", "tiny", "--checkpoint", str(torn), "--text", "Anna: hi"]))


def test_foreign_file_exits_2(tmp_path):
    foreign = tmp_path / "model.pt"
    foreign.write_bytes(b"\x80\x04not a safetensors file")
    assert "safetensors" in _error(run_cli(["--preset", "tiny", "--checkpoint", str(foreign), "--text", "x"]))


def test_checkpoint_from_an_incompatible_config_exits_2(handoff, tmp_path):
    # weights of a latent_dim 32 model saved under a header claiming latent_dim 64
    small = assets_config(Path(handoff.config.tiny_assets_dir), latent_dim=32, checkpoint_dir=str(tmp_path / "a"))
    from latentbridge.models.bridge import build_model
    from latentbridge.models.specs import Runtime
    from latentbridge.recipe import model_spec

    lying = handoff.config.replace(checkpoint_dir=str(tmp_path / "b"))
    path = write_handoff(lying, model=build_model(model_spec(small, Runtime())))
    err = _error(run_cli(["--preset", "tiny", "--checkpoint", str(path), "--text", "Anna: hi"]))
    assert "do not fit" in err


def test_checkpoint_with_unknown_config_fields_exits_2(handoff, tmp_path):
    from latentbridge.training.checkpoint import config_fingerprint, load_model_file, write_model_file

    mf = load_model_file(handoff.path)
    values = {**mf.config, "latent_warp_factor": 9}
    path = write_model_file(tmp_path / "best_model.pt", mf.model, config=values,
                            fingerprint=config_fingerprint(values), step=0, stage="x")
    assert "latent_warp_factor" in _error(run_cli(["--preset", "tiny", "--checkpoint", str(path), "--text", "x"]))


def test_no_input_at_all_is_a_user_error(handoff):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    import sys
    saved, sys.stdin = sys.stdin, Terminal()
    try:
        with pytest.raises(UserError, match="Nothing to transform"):
            infer.run(handoff.config, ModeOptions(checkpoint=handoff.path))
    finally:
        sys.stdin = saved


def test_a_changed_backbone_folder_is_refused(handoff, tmp_path):
    import shutil

    copy = tmp_path / "assets"
    shutil.copytree(Path(handoff.config.tiny_assets_dir) / "models", copy / "models")
    moved = assets_config(copy, checkpoint_dir=str(tmp_path / "ck"), max_generation_length=8)
    path = write_handoff(moved)
    assert run_cli(["--preset", "tiny", "--checkpoint", str(path), "--text", "Anna: hi"]).exit_code == 0
    config_file = copy / "models" / "gemma3" / "config.json"
    config_file.write_text(config_file.read_text() + "\n")  # any change to the folder's content counts
    err = _error(run_cli(["--preset", "tiny", "--checkpoint", str(path), "--text", "Anna: hi"]))
    assert "gpt2_model_files" in err and "incompatible" in err
