"""The on-disk format: the codec, the folder layout, the safetensors writer, and tensor files byte-identical to those
written before the split."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from latentbridge.training.checkpoint import (AsyncCheckpointer, ConfigFingerprint, TrainState, find_latest,
                                             load_checkpoint, load_model_file, write_model_file)
from latentbridge.files import file_entry, header_digest
from latentbridge.training.checkpoint.convert import convert
from latentbridge.training.checkpoint.format import decode_state, encode_state, write_safetensors
from tests.factories import tiny_checkpointer, tiny_train_state

LEGACY_STEP = "checkpoints/step-000000003"


def test_codec_round_trips_nested_state_without_pickle():
    t = torch.arange(6.0).reshape(2, 3)
    state = {"a": [t, (1, "x", None)], "b": {3: t + 1, "c": float("-inf")}, "n": np.int64(7), "ok": True}
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode_state(state, "s", tensors, lambda key, x: x.clone())
    json.dumps(skeleton)  # JSON all the way down; tensors sit beside it
    assert sorted(tensors) == ["s/a/0", "s/b/3"]
    back = decode_state(json.loads(json.dumps(skeleton)), tensors)
    assert torch.equal(back["a"][0], t) and back["a"][1] == (1, "x", None) and torch.equal(back["b"][3], t + 1)
    assert math.isinf(back["b"]["c"]) and back["n"] == 7 and back["ok"] is True


def test_our_safetensors_writer_makes_the_bytes_of_safetensors_own(tmp_path):
    dtypes = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.float16, torch.bfloat16, torch.int32,
              torch.float32, torch.float64, torch.int64)
    tensors = {f"t.{i}": (torch.randn(3, 5 + i) * 10).to(dtype) for i, dtype in enumerate(dtypes)}
    tensors.update(empty=torch.zeros(0, 4), scalar=torch.tensor(2.5), big=torch.randn(3 << 18))
    for metadata in ({}, {"format": "latentbridge-checkpoint"}):
        entry = write_safetensors(tmp_path / "x.safetensors", tensors, metadata)
        assert (tmp_path / "x.safetensors").read_bytes() == save(tensors, metadata=metadata or None)
        assert entry == file_entry(tmp_path / "x.safetensors")  # the digest taken while writing is the file's
    back = load_file(tmp_path / "x.safetensors")
    assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], v) for k, v in tensors.items())


def test_find_latest_ignores_partial_and_unmanifested(tmp_path):
    d = tmp_path / "ckpt"
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(1, tiny_train_state(1))
    (d / "step-000000009.partial").mkdir()
    (d / "step-000000008").mkdir()  # no manifest: never picked
    assert find_latest(d).name == "step-000000001"
    assert find_latest(tmp_path / "missing") is None


def test_resaving_a_checkpoint_from_before_the_split_writes_the_same_files(tmp_path, legacy_files):
    """The files are unchanged but for the dropped (always empty) grad-scaler entry of state.json; the manifest
    of format version 2 records xxh3_128 digests (not sha256) and its own digest."""
    old = legacy_files / LEGACY_STEP
    manifest = json.loads((old / "manifest.json").read_text())
    convert(old)
    loaded = load_checkpoint(old, None)
    fingerprint = ConfigFingerprint(manifest["fingerprint"], manifest["fingerprint_fields"])
    with AsyncCheckpointer(tmp_path / "new", fingerprint=fingerprint) as saver:
        saver.save(3, TrainState(stage=loaded.stage, model=loaded.model, optimizer=loaded.optimizer,
                                 scheduler=loaded.scheduler, loop=loaded.loop, config=loaded.config))
    new = tmp_path / "new" / old.name
    for name in ("model.safetensors", "state.safetensors", "config.json"):
        assert (new / name).read_bytes() == (old / name).read_bytes(), name
    old_state = json.loads((old / "state.json").read_text())
    assert old_state.pop("scaler") == {"scale": 65536.0}
    assert json.loads((new / "state.json").read_text()) == old_state
    again = json.loads((new / "manifest.json").read_text())
    assert again["xxh3_128"] == header_digest(again)
    del again["xxh3_128"]
    assert (again.pop("format_version"), manifest.pop("format_version")) == (2, 1)
    for m in (again, manifest):
        m["created_unix"] = 0
        del m["files"]["state.json"]
        m["files"] = {name: entry["bytes"] for name, entry in m["files"].items()}
    assert again == manifest


def _header_and_data(path):
    """A safetensors file's JSON header (its metadata map is stored in no fixed order) and its tensor bytes."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def test_rewriting_a_model_file_from_before_the_split_writes_the_same_header_and_tensors(tmp_path, legacy_files):
    """The same tensors and header fields, but for format version 2's one digest over header and tensors."""
    old = legacy_files / "checkpoints/best_model.pt"
    with safe_open(str(old), framework="pt") as f:
        meta = f.metadata()
    old_header, old_data = _header_and_data(old)
    convert(old)
    loaded = load_model_file(old)
    fingerprint = ConfigFingerprint(meta["fingerprint"], json.loads(meta["fingerprint_fields"]))
    path = write_model_file(tmp_path / old.name, loaded.model, config=loaded.config, step=loaded.step,
                            stage=loaded.stage, fingerprint=fingerprint)
    assert _header_and_data(path) == _header_and_data(old)  # conversion wrote what today's writer writes
    new_header, new_data = _header_and_data(path)
    assert new_data == old_data
    new_meta, old_meta = new_header.pop("__metadata__"), old_header.pop("__metadata__")
    assert new_header == old_header
    assert (new_meta.pop("format_version"), old_meta.pop("format_version")) == ("2", "1")
    assert new_meta.pop("xxh3_128") and old_meta.pop("tensors_sha256")
    assert new_meta == old_meta
