"""Loading: torn, corrupt, foreign, incompatible and version-1 checkpoints are refused; those written before the split
load once converted."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from latentbridge.errors import UserError
from latentbridge.files import hash_path
from latentbridge.training.checkpoint import config_fingerprint, load_checkpoint, load_model_file
from latentbridge.training.checkpoint.convert import convert, main as convert_main
from tests.factories import tiny_checkpointer, tiny_fingerprint, tiny_train_state

FP = tiny_fingerprint()
LEGACY_STEP = "checkpoints/step-000000003"


def legacy_fingerprint(backbone):
    """The fingerprint today's code computes for the settings the legacy checkpoint was written under."""
    fields = {"latent_dim": 8, "prefix_len": 2, "modernbert_model_files": hash_path(backbone)}
    return config_fingerprint(fields, tuple(fields))


# --- refusals --------------------------------------------------------------------------------


def test_torn_missing_manifest_is_refused(saved):
    (saved / "manifest.json").unlink()
    with pytest.raises(UserError, match=rf"{saved}.*no manifest.json.*torn"):
        load_checkpoint(saved, FP)


def test_torn_truncated_file_is_refused(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(UserError, match=r"torn: model.safetensors has \d+ bytes, the manifest says \d+"):
        load_checkpoint(saved, FP)


def test_hash_mismatch_is_refused(saved):
    data = bytearray((saved / "state.json").read_bytes())
    data[-3] ^= 1
    (saved / "state.json").write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt: the xxh3_128 of state.json"):
        load_checkpoint(saved, FP)


def test_partial_folder_is_refused(tmp_path):
    (tmp_path / "step-000000001.partial").mkdir()
    with pytest.raises(UserError, match="unfinished save"):
        load_checkpoint(tmp_path / "step-000000001.partial", FP)


def test_foreign_checkpoint_is_refused(tmp_path, saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format": "someone-else"}))
    with pytest.raises(UserError, match="not a latentbridge checkpoint"):
        load_checkpoint(saved, FP)
    pickled = tmp_path / "old.pt"
    torch.save({"model": 1}, pickled)
    with pytest.raises(UserError, match="is a file.*never loaded"):
        load_checkpoint(pickled, FP)
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_model_file(pickled)


def test_newer_format_version_is_refused(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format_version": 3}))
    with pytest.raises(UserError, match="format version 3; this latentbridge reads versions up to 2"):
        load_checkpoint(saved, FP)


def test_incompatible_config_is_refused_naming_the_field(saved):
    other = config_fingerprint({"latent_dim": 16, "prefix_len": 2})
    with pytest.raises(UserError, match=r"incompatible model configuration \(latent_dim: checkpoint 8, now 16\)"):
        load_checkpoint(saved, other)
    load_checkpoint(saved, None)  # no expectation: no check


# --- model files -----------------------------------------------------------------------------


def test_async_save_model_and_refusals(tmp_path):
    saver = tiny_checkpointer(tmp_path)
    path = tmp_path / "ckpt" / "best_model.pt"
    saver.save_model(path, tiny_train_state(1).model, config={"a": 1}, step=1, stage="s")
    saver.close()
    assert load_model_file(path, FP).config == {"a": 1}
    with pytest.raises(UserError, match="incompatible"):
        load_model_file(path, config_fingerprint({"latent_dim": 9}))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        load_model_file(path, FP)
    path.write_bytes(bytes(data[:-5]))
    with pytest.raises(UserError, match="torn"):
        load_model_file(path, FP)


def test_step_checkpoint_folder_loads_as_model_file(saved):
    assert load_model_file(saved, FP).step == 5


# --- written before the split (tests/golden/legacy_03780ed): format version 1 ------------------


@pytest.fixture
def converted(legacy_files):
    """The legacy files after `python -m latentbridge.training.checkpoint.convert` on both."""
    assert convert_main([str(legacy_files / LEGACY_STEP), str(legacy_files / "checkpoints/best_model.pt")]) == 0
    return legacy_files


@pytest.mark.parametrize("name", [LEGACY_STEP, "checkpoints/best_model.pt"])
def test_version_1_is_refused_naming_the_conversion_command(legacy_files, name):
    path = legacy_files / name
    with pytest.raises(UserError, match=rf"format version 1.*not loaded.*python -m latentbridge.training.checkpoint."
                                        rf"convert {path}"):
        load_model_file(path)


def test_conversion_is_refused_for_a_damaged_version_1_file(legacy_files):
    path = legacy_files / "checkpoints/best_model.pt"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt: its tensors do not match the sha256"):
        convert(path)
    config = legacy_files / LEGACY_STEP / "config.json"
    config.write_text(config.read_text().replace("8", "9"))  # same size, other content
    with pytest.raises(UserError, match="corrupt: the sha256 of config.json"):
        convert(legacy_files / LEGACY_STEP)


def test_converting_twice_changes_nothing(converted):
    path = converted / "checkpoints/best_model.pt"
    before = path.read_bytes()
    assert "already of format version 2" in convert(path)
    assert path.read_bytes() == before


def test_checkpoint_written_before_the_split_loads_once_converted(converted):
    legacy_files = converted
    loaded = load_checkpoint(legacy_files / LEGACY_STEP, legacy_fingerprint(legacy_files / "backbone"))
    assert (loaded.step, loaded.stage, loaded.config) == (3, "pretrain_middle", {"latent_dim": 8, "prefix_len": 2})
    assert loaded.loop == {"epoch": 1, "batch": 3, "best": float("inf"), "pair": (1, 2), "by_int": {1: "a"}}
    assert loaded.model["head.weight"] is loaded.model["emb.weight"]  # tied weights, stored once
    model = nn.ModuleDict({"emb": nn.Embedding(5, 4), "head": nn.Linear(4, 5, bias=False), "mid": nn.Linear(4, 3)})
    model["head"].weight = model["emb"].weight
    model.load_state_dict(loaded.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt.load_state_dict(loaded.optimizer)
    assert opt.state_dict()["state"][0]["step"].item() == 1


def test_model_file_written_before_the_split_loads_once_converted(converted):
    legacy_files = converted
    loaded = load_model_file(legacy_files / "checkpoints/best_model.pt", legacy_fingerprint(legacy_files / "backbone"))
    step = load_checkpoint(legacy_files / LEGACY_STEP, None)
    assert (loaded.step, loaded.stage) == (3, "pretrain_middle")
    assert all(torch.equal(loaded.model[k], step.model[k]) for k in step.model)


def test_backbone_changed_since_a_checkpoint_from_before_the_split_is_refused(converted):
    legacy_files = converted
    weights = legacy_files / "backbone" / "sub" / "weights.bin"
    weights.write_bytes(weights.read_bytes()[::-1])
    with pytest.raises(UserError, match=r"modernbert_model_files: checkpoint 'f83f62375060447000759d63457080a2', now"):
        load_checkpoint(legacy_files / LEGACY_STEP, legacy_fingerprint(legacy_files / "backbone"))
    with pytest.raises(UserError, match="incompatible model configuration"):
        load_model_file(legacy_files / "checkpoints/best_model.pt", legacy_fingerprint(legacy_files / "backbone"))


def test_legacy_backbone_digest_does_not_excuse_other_differences(converted):
    legacy_files = converted
    fields = {"latent_dim": 16, "prefix_len": 2, "modernbert_model_files": hash_path(legacy_files / "backbone")}
    with pytest.raises(UserError, match=r"\(latent_dim: checkpoint 8, now 16\)"):
        load_checkpoint(legacy_files / LEGACY_STEP, config_fingerprint(fields, tuple(fields)))


def test_converted_checkpoint_is_still_checked_for_corruption(converted):
    config = converted / LEGACY_STEP / "config.json"
    config.write_text(config.read_text().replace("8", "9"))  # same size, other content
    with pytest.raises(UserError, match="corrupt: the sha256 of config.json"):
        load_checkpoint(converted / LEGACY_STEP, None)
