"""No downgrade path: a model file or checkpoint whose header says format version 1 (whose headers no digest
covered) is refused, however well its old digests match, and a header repeating a key is refused -- the
safetensors header, state.json, config.json, the checkpoint and cache manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from latentbridge.data.cache import read_manifest as read_cache_manifest
from latentbridge.errors import UserError
from latentbridge.files import file_entry, header_digest
from latentbridge.training.checkpoint import MANIFEST_NAME, find_latest, load_checkpoint, load_model_file
from latentbridge.training.checkpoint.format import SELF_DIGEST, tensor_digest, write_safetensors
from tests.reliability.test_checkpoint_integrity import cli_run, replace_file


def forge_version_1(path, config_change: dict) -> None:
    """The campaign's forgery: format_version 1, no xxh3 digest, an edited config, tensors_sha256 recomputed."""
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(path)
    meta.pop(SELF_DIGEST)
    meta.update(format_version="1", tensors_sha256=tensor_digest(tensors),
                config=json.dumps({**json.loads(meta["config"]), **config_change}))
    replace_file(path, lambda tmp: write_safetensors(tmp, tensors, meta))


def test_a_forged_downgrade_is_refused_by_load_infer_and_eval(handoff_copy):
    forge_version_1(handoff_copy, {"max_generation_length": 1, "temperature": 9.0})
    with pytest.raises(UserError, match=r"format version 1.*not loaded"):
        load_model_file(handoff_copy)
    result = cli_run("--mode", "infer", "--preset", "tiny", "--checkpoint", str(handoff_copy), "--text", "Hi")
    assert result.exit_code == 2 and "format version 1" in result.stderr, result.output


def test_a_step_checkpoint_of_version_1_is_refused(run_copy):
    latest = find_latest(run_copy.checkpoint_dir)
    manifest = json.loads((latest / MANIFEST_NAME).read_text())
    manifest.pop(SELF_DIGEST)
    manifest["format_version"] = 1
    (latest / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=rf"checkpoint {latest} has format version 1.*convert {latest}"):
        load_checkpoint(latest, None)


def _repeat_first_key(text: str, key: str, value: str) -> str:
    """`text` (a JSON object) with `"key": value` added again right after its opening brace."""
    return "{" + f'"{key}": {value}, ' + text.lstrip()[1:]


def test_a_repeated_key_in_a_safetensors_header_is_refused(handoff_copy):
    data = handoff_copy.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].decode()
    meta_at = header.index('"__metadata__":{') + len('"__metadata__":{')
    edited = (header[:meta_at] + '"step":"999",' + header[meta_at:]).rstrip()
    edited = edited.encode() + b" " * (-len(edited) % 8)
    handoff_copy.write_bytes(len(edited).to_bytes(8, "little") + edited + data[8 + n:])
    with pytest.raises(UserError, match=r"appear more than once"):
        load_model_file(handoff_copy)


@pytest.mark.parametrize("name", ["state.json", "config.json", MANIFEST_NAME])
def test_a_repeated_key_in_a_checkpoint_json_file_is_refused(run_copy, name):
    latest = find_latest(run_copy.checkpoint_dir)
    path = latest / name
    key, value = ("step", "7") if name == MANIFEST_NAME else ("loop", "{}") if name == "state.json" else ("seed", "5")
    path.write_text(_repeat_first_key(path.read_text(), key, value))
    if name != MANIFEST_NAME:  # the manifest's own digest would catch the edit first: record the new file
        manifest = json.loads((latest / MANIFEST_NAME).read_text())
        manifest["files"][name] = file_entry(path)
        manifest.pop(SELF_DIGEST)
        manifest[SELF_DIGEST] = header_digest(manifest)
        (latest / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=rf"{name}.*appear more than once"):
        load_checkpoint(latest, None)


@pytest.mark.parametrize("cache_copy", ["jsonl"], indirect=True)
def test_a_repeated_key_in_a_cache_manifest_is_refused(cache_copy):
    manifest = next(Path(cache_copy.preprocess_cache_dir).rglob("manifest.json"))
    manifest.write_text(_repeat_first_key(manifest.read_text(), "version", "0"))
    with pytest.raises(UserError, match="appear more than once"):
        read_cache_manifest(manifest.parent)
