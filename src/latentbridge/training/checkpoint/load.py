"""Loading checkpoints and model files, refusing torn, corrupt, foreign, malformed or incompatible ones with
UserError naming the file; `restore` and `restore_optimizer` do the same for a state that does not fit the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from latentbridge.errors import UserError
from latentbridge.files import check_safetensors_header, digest_matches, header_digest, loads_unique, recorded_hash
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint, fingerprint_mismatch
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT,
                                                     PARTIAL_SUFFIX, SELF_DIGEST, decode_state, model_file_digest)

CONVERT_COMMAND = "python -m latentbridge.training.checkpoint.convert"
MODEL_TENSORS = "model.safetensors"
STATE_TENSORS = "state.safetensors"


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


def _malformed(where: Path, what: str) -> UserError:
    return UserError(f"{where} is malformed: {what}. The file is damaged or was not written by latentbridge; "
                     "use another checkpoint (or retrain).")


def _field(where: Path, header: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """`header[key]`, which must be of type `kind` (never a bool for int)."""
    if key not in header:
        raise _malformed(where, f"its {key!r} is missing")
    value = header[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _malformed(where, f"its {key!r} is {value!r}")
    return value


def _json_field(where: Path, metadata: Mapping[str, str], key: str, kind: type) -> Any:
    """A model-file header entry that holds JSON of type `kind`."""
    try:
        value = loads_unique(_field(where, metadata, key, str))
    except ValueError as exc:  # not JSON, or a key repeated
        raise _malformed(where, f"its {key!r} is not JSON ({exc})") from None
    if not isinstance(value, kind):
        raise _malformed(where, f"its {key!r} is not a JSON {kind.__name__}")
    return value


def _int_field(where: Path, metadata: Mapping[str, str], key: str) -> int:
    """A model-file header entry that holds a whole number as text."""
    text = _field(where, metadata, key, str)
    try:
        return int(text)
    except ValueError:
        raise _malformed(where, f"its {key!r} is {text!r}, not a whole number") from None


def _check_version(what: str, where: Path, version: Any, path: Path) -> None:
    """`what` ("checkpoint <folder>", read from the file `where`) is of the current format version. An older
    version is refused, not read: its headers are not covered by a digest, so an edited one (a forged
    downgrade) could not be told from a real one. `path` is what the conversion command takes."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _malformed(where, f"its format version is {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"{what} has format version {version}; this latentbridge reads versions up to {FORMAT_VERSION}.")
    if version < FORMAT_VERSION:
        raise UserError(f"{what} has format version {version}, written by an older latentbridge: its header is not "
                        f"covered by a digest, so it is not loaded (an edited header could not be detected). If you "
                        f"wrote it yourself, convert it once with `{CONVERT_COMMAND} {path}` (it checks the old "
                        "digests and writes the current format), or retrain.")


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the committed checkpoint folder `path`: format, version, its own digest and fields checked."""
    _check_is_checkpoint_folder(path)
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise UserError(
            f"checkpoint {path} has no {MANIFEST_NAME}: it is torn (the save was interrupted) "
            "or not a latentbridge checkpoint. Resume from an earlier one."
        )
    manifest = read_manifest_json(path)
    _check_version(f"checkpoint {path}", manifest_path, manifest.get("format_version"), path)
    if manifest.get(SELF_DIGEST) != header_digest(manifest):
        raise UserError(f"checkpoint {path} is corrupt: {MANIFEST_NAME} does not match its own {SELF_DIGEST} "
                        "(it was edited or damaged). Resume from an earlier checkpoint.")
    for key, kind in (("kind", str), ("step", int), ("stage", str), ("fingerprint", str), ("files", dict)):
        _field(manifest_path, manifest, key, kind)
    return manifest


def read_manifest_json(path: Path) -> dict[str, Any]:
    """The manifest of the checkpoint folder `path` as JSON of a latentbridge checkpoint, of any version."""
    try:
        manifest = loads_unique(path.joinpath(MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint {path}: {MANIFEST_NAME} is unreadable ({exc}); the checkpoint is torn.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"checkpoint {path} is not a latentbridge checkpoint (its manifest has format {found!r}).")
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
        recorded = _field(path / MANIFEST_NAME, entry, "bytes", int) if isinstance(entry, dict) else None
        if recorded is None:
            raise _malformed(path / MANIFEST_NAME, f"its entry for {name} is {entry!r}")
        size = file.stat().st_size
        if size != recorded:
            raise UserError(f"checkpoint {path} is torn: {name} has {size} bytes, the manifest says {recorded}.")
        if not digest_matches(file, entry):
            raise UserError(f"checkpoint {path} is corrupt: the {recorded_hash(entry)} of {name} does not match "
                            "its manifest.")


def _refuse_if_incompatible(path: Path, found: Mapping[str, Any], expected: ConfigFingerprint | str | None) -> None:
    problem = fingerprint_mismatch(path, found, expected)
    if problem:
        raise UserError(problem)


# --- loading ---------------------------------------------------------------------------------


def load_checkpoint(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None, *, verify: bool = True) -> LoadedCheckpoint:
    """Load a committed step checkpoint, refusing torn, foreign, malformed or config-incompatible ones with UserError.

    `expected_fingerprint=None` skips the compatibility check. `verify=False` skips the digest pass.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest["kind"] != "step":
        raise UserError(f"checkpoint {path} is a {manifest['kind']!r} checkpoint, not a resumable step checkpoint.")
    _refuse_if_incompatible(path, manifest, expected_fingerprint)
    if verify:
        verify_files(path, manifest)
    model = _read_tensors(path / MODEL_TENSORS)
    tensors = _read_tensors(path / STATE_TENSORS)
    state = _read_json_object(path / "state.json")
    config = _read_json_object(path / "config.json")
    aliases = state.pop("model_aliases", {})
    _link_aliases(path / "state.json", model, aliases)
    try:
        decoded = {k: decode_state(v, tensors) for k, v in state.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(path / "state.json", f"it names a tensor {STATE_TENSORS} does not hold ({exc})") from None
    loop = decoded.get("loop") or {}
    if not isinstance(loop, dict):
        raise _malformed(path / "state.json", f"its 'loop' is {loop!r}")
    return LoadedCheckpoint(
        path=path, step=manifest["step"], stage=manifest["stage"], model=model,
        optimizer=decoded.get("optimizer"), scheduler=decoded.get("scheduler"),
        loop=loop, rng=decoded.get("rng"), config=config, manifest=manifest,
    )


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        check_safetensors_header(path)
        return load_file(path)
    except Exception as exc:  # a damaged file that slipped past verify=False
        raise UserError(f"checkpoint file {path} cannot be read ({type(exc).__name__}: {exc}); it is torn or "
                        "corrupt.") from exc


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = loads_unique(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint file {path} cannot be read ({exc}); it is torn or corrupt.") from exc
    if not isinstance(value, dict):
        raise _malformed(path, "it is not a JSON object")
    return value


def _link_aliases(where: Path, model: dict[str, torch.Tensor], aliases: Any) -> None:
    """Tied weights are stored once: point each alias at its stored tensor."""
    if not isinstance(aliases, dict) or not all(isinstance(v, str) and v in model for v in aliases.values()):
        raise _malformed(where, f"its model aliases {aliases!r} name tensors that are not stored")
    for alias, canonical in aliases.items():
        model[alias] = model[canonical]


def read_model_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A model file's header metadata and tensors, of any version; UserError when it is not a readable
    safetensors file or its header repeats a key."""
    if not path.exists():
        raise UserError(f"model file {path} does not exist.")
    try:
        check_safetensors_header(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return meta, load_file(path)
    except Exception as exc:
        raise UserError(
            f"model file {path} is not a readable safetensors file ({type(exc).__name__}: {exc}): it is torn, "
            "or a foreign file (pickled .pt files are never loaded)."
        ) from exc


def _check_model_file_digest(path: Path, meta: Mapping[str, str], model: Mapping[str, torch.Tensor]) -> None:
    """The digest covers the header and the tensors."""
    if meta.get(SELF_DIGEST) != model_file_digest(meta, model):
        raise UserError(f"model file {path} is corrupt: its header or tensors do not match the {SELF_DIGEST} in "
                        "its header (it was edited or damaged).")


def load_model_file(path: str | Path, expected_fingerprint: ConfigFingerprint | str | None = None) -> ModelFile:
    """Load a model file (best / hand-off), or the model of a step checkpoint folder; UserError if torn, foreign,
    malformed or incompatible."""
    path = Path(path)
    if path.is_dir():
        ckpt = load_checkpoint(path, expected_fingerprint)
        return ModelFile(path, ckpt.model, ckpt.config, ckpt.step, ckpt.stage, ckpt.manifest["fingerprint"])
    meta, model = read_model_file(path)
    if meta.get("format") != MODEL_FILE_FORMAT:
        raise UserError(f"model file {path} is not a latentbridge model file (format {meta.get('format')!r}).")
    _check_version(f"model file {path}", path, _int_field(path, meta, "format_version"), path)
    _check_model_file_digest(path, meta, model)
    found = {"fingerprint": _field(path, meta, "fingerprint", str),
             "fingerprint_fields": _json_field(path, meta, "fingerprint_fields", dict)}
    _refuse_if_incompatible(path, found, expected_fingerprint)
    _link_aliases(path, model, _json_field(path, meta, "aliases", dict) if "aliases" in meta else {})
    return ModelFile(path, model, _json_field(path, meta, "config", dict), _int_field(path, meta, "step"),
                     _field(path, meta, "stage", str), found["fingerprint"])


# --- putting a loaded state into the run -----------------------------------------------------


def _does_not_fit(path: Path, what: str, detail: str) -> UserError:
    return UserError(f"The {what} state in {path} does not fit this run ({detail}): the file is damaged or comes from "
                     "another model. Use another checkpoint, or start fresh with another --checkpoint-dir.")


def restore(path: Path, what: str, load: Callable[[Any], Any], state: Any) -> None:
    """`load(state)` (e.g. a model's load_state_dict); a state that does not fit -- other keys or shapes, a
    missing part -- is a UserError naming `path`, the file it came from."""
    if state is None:
        raise _malformed(path, f"it holds no {what} state")
    try:
        load(state)
    except (UserError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        message = str(exc).strip()
        raise _does_not_fit(path, what, message.splitlines()[-1].strip() if message else type(exc).__name__) from None


def restore_optimizer(path: Path, optimizer: torch.optim.Optimizer, state: Any) -> None:
    """`restore` for an optimizer, which also checks what torch does not: each per-parameter tensor (moments,
    momentum) has its parameter's shape (or is a scalar, like a step count)."""
    restore(path, "optimizer", optimizer.load_state_dict, state)
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise _does_not_fit(path, "optimizer", f"{key} has shape {tuple(value.shape)}, its parameter "
                                                           f"{tuple(param.shape)}")
