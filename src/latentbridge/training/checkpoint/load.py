"""Loading checkpoints and model files, refusing torn, corrupt, foreign or incompatible ones with UserError."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from latentbridge.errors import UserError
from latentbridge.files import HASH_NAME, digest_matches
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint, fingerprint_mismatch
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT,
                                                     PARTIAL_SUFFIX, decode_state, tensor_digest)


@dataclass
class LoadedCheckpoint:
    """A verified step checkpoint, tensors on CPU; pass the parts to load_state_dict()."""

    path: Path
    step: int
    stage: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    loop: dict[str, Any]
    rng: dict[str, Any] | None
    config: dict[str, Any]
    manifest: dict[str, Any]


@dataclass
class ModelFile:
    """A verified model file (best / hand-off), tensors on CPU."""

    path: Path
    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    step: int
    stage: str
    fingerprint: str


# --- integrity -------------------------------------------------------------------------------


def _check_is_checkpoint_folder(path: Path) -> None:
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist.")
    if path.name.endswith(PARTIAL_SUFFIX):
        raise UserError(f"checkpoint {path} is an unfinished save (a '{PARTIAL_SUFFIX}' folder); use a committed one.")
    if not path.is_dir():
        raise UserError(
            f"checkpoint {path} is a file, not a latentbridge checkpoint folder "
            "(model files like best_model.pt load with load_model_file; pickled .pt files are never loaded)."
        )


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the committed checkpoint folder `path`, checked for format and version."""
    _check_is_checkpoint_folder(path)
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise UserError(
            f"checkpoint {path} has no {MANIFEST_NAME}: it is torn (the save was interrupted) "
            "or not a latentbridge checkpoint. Resume from an earlier one."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint {path}: {MANIFEST_NAME} is unreadable ({exc}); the checkpoint is torn.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"checkpoint {path} is not a latentbridge checkpoint (its manifest has format {found!r}).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version!r}; this latentbridge reads versions up to {FORMAT_VERSION}.")
    return manifest


def verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is there with its recorded size and digest."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise UserError(f"checkpoint {path}: the manifest lists no files; the checkpoint is torn.")
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            raise UserError(f"checkpoint {path} is torn: {name} is missing.")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise UserError(f"checkpoint {path} is torn: {name} has {size} bytes, the manifest says {entry['bytes']}.")
        if not digest_matches(file, entry):
            raise UserError(f"checkpoint {path} is corrupt: the {HASH_NAME} of {name} does not match its manifest.")


def _refuse_if_incompatible(path: Path, found: Mapping[str, Any], expected: ConfigFingerprint | str | None) -> None:
    problem = fingerprint_mismatch(path, found, expected)
    if problem:
        raise UserError(problem)


# --- loading ---------------------------------------------------------------------------------


def load_checkpoint(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None, *, verify: bool = True) -> LoadedCheckpoint:
    """Load a committed step checkpoint, refusing torn, foreign or config-incompatible ones with UserError.

    `expected_fingerprint=None` skips the compatibility check. `verify=False` skips the sha256 pass.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("kind") != "step":
        raise UserError(f"checkpoint {path} is a {manifest.get('kind')!r} checkpoint, not a resumable step checkpoint.")
    _refuse_if_incompatible(path, manifest, expected_fingerprint)
    if verify:
        verify_files(path, manifest)
    try:
        model = load_file(path / "model.safetensors")
        tensors = load_file(path / "state.safetensors")
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except Exception as exc:  # a damaged file that slipped past verify=False
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is torn or corrupt.") from exc
    for alias, canonical in state.pop("model_aliases", {}).items():
        model[alias] = model[canonical]
    decoded = {k: decode_state(v, tensors) for k, v in state.items()}
    return LoadedCheckpoint(
        path=path, step=int(manifest["step"]), stage=str(manifest["stage"]), model=model,
        optimizer=decoded.get("optimizer"), scheduler=decoded.get("scheduler"),
        loop=decoded.get("loop") or {}, rng=decoded.get("rng"), config=config, manifest=manifest,
    )


def _read_model_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A model file's header metadata and tensors; UserError when it is not a readable safetensors file."""
    if not path.exists():
        raise UserError(f"model file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return meta, load_file(path)
    except Exception as exc:
        raise UserError(
            f"model file {path} is not a readable safetensors file ({type(exc).__name__}: {exc}): it is torn, "
            "or a foreign file (pickled .pt files are never loaded)."
        ) from exc


def load_model_file(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None = None) -> ModelFile:
    """Load a model file (best / hand-off), or the model of a step checkpoint folder; UserError if torn/foreign/incompatible."""
    path = Path(path)
    if path.is_dir():
        ckpt = load_checkpoint(path, expected_fingerprint)
        return ModelFile(path, ckpt.model, ckpt.config, ckpt.step, ckpt.stage, ckpt.manifest["fingerprint"])
    meta, model = _read_model_file(path)
    if meta.get("format") != MODEL_FILE_FORMAT:
        raise UserError(f"model file {path} is not a latentbridge model file (format {meta.get('format')!r}).")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise UserError(f"model file {path} has format version {meta.get('format_version')}; this latentbridge reads up to {FORMAT_VERSION}.")
    found = {"fingerprint": meta.get("fingerprint"), "fingerprint_fields": json.loads(meta.get("fingerprint_fields", "{}"))}
    _refuse_if_incompatible(path, found, expected_fingerprint)
    if tensor_digest(model) != meta.get("tensors_sha256"):
        raise UserError(f"model file {path} is corrupt: its tensors do not match the sha256 in its header.")
    for alias, canonical in json.loads(meta.get("aliases", "{}")).items():
        model[alias] = model[canonical]
    return ModelFile(path, model, json.loads(meta["config"]), int(meta["step"]), meta["stage"], meta["fingerprint"])
