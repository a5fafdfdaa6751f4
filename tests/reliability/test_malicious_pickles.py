"""A pickle planted in any file latentbridge reads back (model files, step checkpoints, the cache) is never run.

The payload writes a marker file when unpickled. Each file is replaced by it as a raw pickle, inside
torch.save's zip, and as a numpy object array; where a manifest records the file, its entry is recorded
again for the planted bytes, so the reader itself meets the payload rather than the digest check.
Every case must end in a UserError, with no marker.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from latentbridge.cached_latents import ensure_cache, load_cache_encoder_state
from latentbridge.data.cache import MANIFEST, open_cache
from latentbridge.errors import UserError
from latentbridge.files import file_entry
from latentbridge.training.checkpoint import load_checkpoint, load_model_file
from tests.factories import assets_config, small_corpus_config, tiny_checkpointer, tiny_fingerprint, tiny_train_state
from tests.factories import write_handoff


class Payload:
    """Unpickling it runs code: it writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return exec, (f"open({str(self.marker)!r}, 'w').write('pickle ran')",)


def payloads(marker: Path) -> dict[str, bytes]:
    as_torch, as_numpy = io.BytesIO(), io.BytesIO()
    torch.save({"model": Payload(marker)}, as_torch)
    np.save(as_numpy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return {"pickle": pickle.dumps(Payload(marker)), "torch.save": as_torch.getvalue(),
            "numpy object array": as_numpy.getvalue()}


KINDS = ["pickle", "torch.save", "numpy object array"]


def rerecord(manifest_path: Path, folder: Path, planted: Path) -> None:
    """Record the planted file's size and digest in the manifest, wherever the manifest lists it."""
    name = planted.relative_to(folder).as_posix()

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (file_entry(planted) if k in (name, planted.name) and isinstance(v, dict) and "bytes" in v
                        else swap(v)) for k, v in node.items()}
        return [swap(v) for v in node] if isinstance(node, list) else node

    manifest_path.write_text(json.dumps(swap(json.loads(manifest_path.read_text()))))


def plant_and_read(file: Path, data: bytes, read: Callable[[], Any], marker: Path, manifest: Path | None) -> None:
    file.write_bytes(data)
    if manifest is not None and file != manifest:
        rerecord(manifest, manifest.parent, file)
    with pytest.raises(UserError):
        read()
    assert not marker.exists(), f"unpickling {file.name} ran code"


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_file_never_runs_a_pickle(kind, tiny_root, tmp_path):
    config = assets_config(tiny_root, checkpoint_dir=str(tmp_path / "ck"))
    path = write_handoff(config)
    marker = tmp_path / "marker"
    plant_and_read(path, payloads(marker)[kind], lambda: load_model_file(path), marker, None)


STEP_FILES = ["model.safetensors", "state.safetensors", "state.json", "config.json", "manifest.json"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", STEP_FILES)
def test_a_step_checkpoint_never_runs_a_pickle(name, kind, tmp_path):
    with tiny_checkpointer(tmp_path, async_save=False) as checkpointer:
        checkpointer.save(1, tiny_train_state(1))
    folder = checkpointer.wait()
    marker = tmp_path / "marker"
    plant_and_read(folder / name, payloads(marker)[kind], lambda: load_checkpoint(folder, tiny_fingerprint()), marker,
                   folder / "manifest.json")


@pytest.fixture(scope="module")
def built_cache(small_root, tmp_path_factory):
    config = small_corpus_config(small_root, tmp_path_factory.mktemp("pickles"), preprocess_format="npy")
    return config, ensure_cache(config, log=lambda m: None).cache.folder


def cache_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def read_everything(folder: Path, encoder: Any) -> None:
    cache = open_cache(folder)
    for rel in cache.manifest["splits"]:
        split = cache.split(*rel.split("/"))
        for i in range(len(split)):
            split[i]
    load_cache_encoder_state(cache, encoder)


@pytest.mark.parametrize("kind", KINDS)
def test_no_cache_file_runs_a_pickle(kind, built_cache, tmp_path, monkeypatch):
    import shutil

    config, original = built_cache
    marker = tmp_path / "marker"
    encoder = torch.nn.Module()
    monkeypatch.setattr(encoder, "load_state_dict", lambda state, strict: None, raising=False)
    for name in cache_files(original):
        folder = Path(shutil.copytree(original, tmp_path / name.replace("/", "_")))
        plant_and_read(folder / name, payloads(marker)[kind], lambda: read_everything(folder, encoder), marker,
                       folder / MANIFEST)
