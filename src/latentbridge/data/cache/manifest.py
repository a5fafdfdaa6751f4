"""A cache folder's manifest: its format and version, the fingerprint naming the folder, and the checks that
every file it lists is there with its size (and digest, for a cache about to be reused)."""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.errors import UserError
from latentbridge.files import FILE_HASH, digest_matches, header_digest, json_digest, loads_unique, recorded_hash

CACHE_FORMAT = "latentbridge-cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"


# --- fingerprint -----------------------------------------------------------------------------


def fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that changes the cache's content."""
    return json_digest(parts)


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "torch", "transformers", "tokenizers", "datasets"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def cache_dir_for(root: os.PathLike | str, fp: str) -> Path:
    return Path(root) / fp[:16]


def corrupt(path: Path, why: str) -> UserError:
    folder = next((p for p in path.parents if (p / MANIFEST).exists()), path.parent)
    return UserError(f"Cache file {path} is corrupted or truncated ({why}). Delete the folder {folder} and "
                     "preprocess again (`--mode preprocess --no-skip-preprocessing-if-cached`).")


def _check_manifest_layout(path: Path, manifest: Any) -> None:
    """The fields a reader relies on are there with their types (the digest only covers manifests since issue 14)."""
    def files_ok(files: Any) -> bool:
        return isinstance(files, dict) and all(isinstance(e, dict) and isinstance(e.get("bytes"), int)
                                               for e in files.values())

    splits = manifest.get("splits")
    ok = (isinstance(splits, dict) and files_ok(manifest.get("extra_files", {}))
          and all(isinstance(e, dict) and isinstance(e.get("count"), int) and files_ok(e.get("files"))
                  for e in splits.values())
          and isinstance(manifest.get("latent_dim"), int) and isinstance(manifest.get("source_names"), list)
          and isinstance(manifest.get("fields"), list) and manifest.get("latent_dtype") in ("int8", "float32"))
    if not ok:
        raise corrupt(path, "its fields are missing or of the wrong type")


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """The manifest of a complete cache, or None when there is none (incomplete or absent)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = loads_unique(path.read_text())
    except ValueError as e:  # not JSON, not UTF-8, or a key repeated
        raise corrupt(path, f"unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise UserError(f"{path} is not a latentbridge cache manifest.")
    if manifest.get("version") != CACHE_VERSION:
        raise UserError(f"Cache {folder} has version {manifest.get('version')}, this code reads "
                        f"{CACHE_VERSION}; preprocess again.")
    if FILE_HASH in manifest and manifest[FILE_HASH] != header_digest(manifest):
        raise corrupt(path, f"it does not match its own {FILE_HASH}: edited or damaged")
    _check_manifest_layout(path, manifest)
    return manifest


def check_files(folder: Path, manifest: Mapping[str, Any], full: bool = False) -> None:
    """Every file of the manifest exists with its recorded size (and checksum when `full`)."""
    listed = [entry["files"] for entry in manifest["splits"].values()] + [manifest.get("extra_files", {})]
    for files in listed:
        for rel, meta in files.items():
            p = folder / rel
            if not p.exists():
                raise corrupt(p, "file missing")
            size = p.stat().st_size
            if size != meta["bytes"]:
                raise corrupt(p, f"{size} bytes on disk, {meta['bytes']} recorded")
            if full and not digest_matches(p, meta):  # also the sha256 / blake2b digests of older caches
                raise corrupt(p, f"checksum mismatch: its content is not what the manifest's {recorded_hash(meta)} "
                                 "says")
