"""Every header a checkpoint loader trusts is covered by a digest, and nothing in a checkpoint ends in a traceback:
a damaged step file or an edited hand-off header is refused naming the file; a malformed or missing field, or a
tensor of another shape, in a file whose digests were recomputed (a foreign or buggy writer) is refused naming
the file too -- in `--resume`, `--mode infer` and `--mode eval` alike, with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from latentbridge import cli
from latentbridge.config_sources import write_config_file
from latentbridge.errors import UserError
from latentbridge.files import header_digest
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run as train
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import MANIFEST_NAME, find_latest, load_checkpoint, load_model_file
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, SELF_DIGEST, model_file_digest, write_json,
                                                     write_safetensors)

APP = cli.app
STEP_FILES = ("model.safetensors", "state.safetensors", "state.json", "config.json", MANIFEST_NAME)


def cli_run(*args: str):
    return CliRunner().invoke(APP, list(args), catch_exceptions=False)


def flip_one_byte(path: Path) -> None:
    """One byte changed, the size kept; in a manifest one digit of the step, so that it stays valid JSON."""
    data = bytearray(path.read_bytes())
    at = data.index(b'"step": ') + len(b'"step": ') if path.name == MANIFEST_NAME else len(data) // 2
    data[at] = ord("7") if data[at] != ord("7") else ord("8")
    path.write_bytes(bytes(data))


# --- rewriting files as a foreign writer would: malformed, yet with digests that match -----------------


def rewrite_model_file(path: Path, change: Callable[[dict, dict], None], *, redigest: bool = True) -> None:
    """Apply `change(metadata, tensors)` to a model file; with `redigest` its digest is recomputed to match."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(path)
    change(metadata, tensors)
    if redigest:
        metadata.pop(SELF_DIGEST, None)
        metadata[SELF_DIGEST] = model_file_digest(metadata, tensors)
    replace_file(path, lambda tmp: write_safetensors(tmp, tensors, metadata))


def replace_file(path: Path, write: Callable[[Path], dict]) -> dict:
    """Write a new file beside `path` and rename it over `path`: the tensors loaded from the old one are mapped
    from it, so it must not be truncated under them."""
    tmp = path.with_name(path.name + ".new")
    entry = write(tmp)
    os.replace(tmp, path)
    return entry


def rewrite_step_files(folder: Path, tensors: dict[str, dict] | None = None, json_files: dict[str, object] | None = None,
                       manifest_change: Callable[[dict], None] = lambda m: None) -> None:
    """Replace files of a step checkpoint and record their sizes and digests in its manifest, its own digest too."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for name, content in (tensors or {}).items():
        manifest["files"][name] = replace_file(folder / name, lambda tmp: write_safetensors(tmp, content,
                                                                                          {"format": CHECKPOINT_FORMAT}))
    for name, content in (json_files or {}).items():
        manifest["files"][name] = write_json(folder / name, content)
    manifest_change(manifest)
    manifest.pop(SELF_DIGEST, None)
    manifest[SELF_DIGEST] = header_digest(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def reshaped(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """`tensors` with `name` given another shape (the same number of elements)."""
    t = tensors[name]
    return {**tensors, name: t.reshape(-1) if t.dim() > 1 else t.reshape(1, -1)}


def resume(config) -> int:
    return train(config, ModeOptions(resume="auto")).exit_code


# --- step checkpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", STEP_FILES)
def test_a_step_file_damaged_in_place_is_refused_naming_it(run_copy, name):
    latest = find_latest(run_copy.checkpoint_dir)
    flip_one_byte(latest / name)
    with pytest.raises(UserError, match=f"checkpoint {latest} is (corrupt|torn): .*{name}"):
        load_checkpoint(latest, checkpoint_fingerprint(run_copy))


def test_resume_from_a_damaged_checkpoint_exits_2_naming_the_file(run_copy, tmp_path):
    flip_one_byte(find_latest(run_copy.checkpoint_dir) / "state.safetensors")
    write_config_file(run_copy, str(tmp_path / "run.yaml"))
    result = cli_run("--mode", "train", "--config", str(tmp_path / "run.yaml"), "--resume", "auto")
    assert result.exit_code == 2 and "the xxh3_128 of state.safetensors does not match" in result.stderr


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.update(step="seven"), r"manifest.json is malformed: its 'step' is 'seven'"),
    (lambda m: m.pop("stage"), r"manifest.json is malformed: its 'stage' is missing"),
    (lambda m: m["files"]["state.json"].update(bytes="many"), r"manifest.json is malformed: its 'bytes' is 'many'"),
], ids=["step-not-a-number", "stage-missing", "size-not-a-number"])
def test_a_malformed_manifest_is_refused_naming_it(run_copy, change, expected):
    rewrite_step_files(find_latest(run_copy.checkpoint_dir), manifest_change=change)
    with pytest.raises(UserError, match=expected):
        resume(run_copy)


def test_an_incomplete_loop_state_is_refused_naming_state_json(run_copy):
    latest = find_latest(run_copy.checkpoint_dir)
    state = json.loads((latest / "state.json").read_text())
    del state["loop"]["plan"]
    rewrite_step_files(latest, json_files={"state.json": state})
    with pytest.raises(UserError, match=rf"{latest / 'state.json'} is malformed: its loop state is incomplete"):
        resume(run_copy)


@pytest.mark.parametrize("file, part, picks, detail", [
    ("model.safetensors", "model", lambda k: k.startswith("middle."), "size mismatch"),
    ("state.safetensors", "optimizer", lambda k: k.endswith("exp_avg"), "exp_avg has shape"),
], ids=["model-weight", "optimizer-moment"])
def test_a_tensor_of_another_shape_stops_resume_naming_its_file(run_copy, file, part, picks, detail):
    latest = find_latest(run_copy.checkpoint_dir)
    tensors = load_file(latest / file)
    name = next(k for k, v in sorted(tensors.items()) if picks(k) and v.dim() == 2)
    rewrite_step_files(latest, tensors={file: reshaped(tensors, name)})
    with pytest.raises(UserError, match=rf"The {part} state in {latest / file} does not fit this run \(.*{detail}"):
        resume(run_copy)


# --- the hand-off file ---------------------------------------------------------------------------


def infer_and_eval(path: Path) -> list:
    """`--mode infer` and `--mode eval` on the model file `path` (each refuses it before any work)."""
    common = ["--preset", "tiny", "--checkpoint", str(path)]
    return [cli_run("--mode", "infer", *common, "--text", "Anna: lunch? Ben: sure"),
            cli_run("--mode", "eval", *common, "--split", "validation", "--output-dir", str(path.parent / "eval"))]


@pytest.mark.parametrize("key, value", [("step", "999"), ("stage", "finetune_adapter"),
                                        ("config", json.dumps({"latent_dim": 64}))])
def test_an_edited_header_is_refused_as_corrupt(handoff_copy, key, value):
    rewrite_model_file(handoff_copy, lambda meta, tensors: meta.update({key: value}), redigest=False)
    with pytest.raises(UserError, match=rf"model file {handoff_copy} is corrupt"):
        load_model_file(handoff_copy)


def test_infer_and_eval_refuse_an_edited_step_with_exit_2(handoff_copy):
    """The campaign's case: `step` edited in best_model.pt's header was accepted and shown in the report."""
    rewrite_model_file(handoff_copy, lambda meta, tensors: meta.update(step="999"), redigest=False)
    for result in infer_and_eval(handoff_copy):
        assert result.exit_code == 2 and f"model file {handoff_copy} is corrupt" in result.stderr, result.output


MALFORMED = {
    "config-missing": (lambda m, t: m.pop("config"), "its 'config' is missing"),
    "config-not-json": (lambda m, t: m.update(config="{latent_dim: 8"), "its 'config' is not JSON"),
    "config-not-an-object": (lambda m, t: m.update(config="[1, 2]"), "its 'config' is not a JSON dict"),
    "step-not-a-number": (lambda m, t: m.update(step="five"), "its 'step' is 'five', not a whole number"),
    "stage-missing": (lambda m, t: m.pop("stage"), "its 'stage' is missing"),
    "fingerprint-fields-not-json": (lambda m, t: m.update(fingerprint_fields="?"),
                                    "its 'fingerprint_fields' is not JSON"),
    "alias-of-nothing": (lambda m, t: m.update(aliases=json.dumps({"x": "nothing"})),
                         "its model aliases .* name tensors that are not stored"),
}


@pytest.mark.parametrize("change, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_header_with_a_matching_digest_is_refused_naming_the_file(handoff_copy, change, expected):
    rewrite_model_file(handoff_copy, change)
    with pytest.raises(UserError, match=rf"{handoff_copy} is malformed: {expected}"):
        load_model_file(handoff_copy)


@pytest.mark.parametrize("case", ["config-missing", "step-not-a-number"])
def test_infer_and_eval_exit_2_on_a_malformed_header(handoff_copy, case):
    change, expected = MALFORMED[case]
    rewrite_model_file(handoff_copy, change)
    for result in infer_and_eval(handoff_copy):
        assert result.exit_code == 2 and f"{handoff_copy} is malformed: {expected}" in result.stderr, result.output


def test_infer_and_eval_exit_2_on_a_tensor_of_another_shape(handoff_copy):
    def reshape_an_adapter_weight(meta, tensors):
        name = next(k for k, v in sorted(tensors.items()) if k.startswith("adapter.") and v.dim() == 2)
        tensors.update(reshaped(tensors, name))

    rewrite_model_file(handoff_copy, reshape_an_adapter_weight)
    for result in infer_and_eval(handoff_copy):
        assert result.exit_code == 2 and f"The weights in {handoff_copy} do not fit" in result.stderr, result.output
