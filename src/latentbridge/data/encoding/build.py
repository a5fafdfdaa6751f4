"""Building the cache, or reusing it: `build_cache` finds the complete cache for these settings (every file's
digest checked) or builds it atomically, streaming: each split is read `chunk_size` examples at a time, and a
chunk is encoded and appended to the split's files before the next one is read, so memory does not grow with
the data. With several processes (`Shards`), chunk j goes to rank j % N; rank 0 merges the ranks' shards in
chunk order (encoding/shards.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from latentbridge.data.build_progress import NullProgress, Progress
from latentbridge.data.cache import (CACHE_FORMAT, CACHE_VERSION, Cache, CacheBuild, cache_dir_for, clean_stale_builds,
                                     find_complete_cache, fingerprint, library_versions, open_cache, read_manifest)
from latentbridge.choices import CACHE_FORMATS
from latentbridge.data.data_specs import CacheSpec, Shards
from latentbridge.data.encoding.chunks import EncodeFn
from latentbridge.data.encoding.shards import build_sharded
from latentbridge.data.encoding.splits import commit_build, same_latent_dim, split_summary, write_split
from latentbridge.data.encoding.tokenize import Tokenizers, pad_token_id
from latentbridge.data.sources import SplitStream
from latentbridge.errors import UserError
from latentbridge.files import with_legacy_digests


@dataclass
class BuildResult:
    cache: Cache
    reused: bool
    seconds: float


def _legacy_cache(root: Path | str, parts: Mapping[str, Any]) -> Optional[Cache]:
    """The complete cache that a latentbridge from before issue 10 built for these settings, if any: it
    named its folder by a fingerprint whose file digests (models, data) were blake2b, now sha256."""
    legacy_parts = with_legacy_digests(parts)
    return None if legacy_parts is None else find_complete_cache(root, fingerprint(legacy_parts))


def _reuse(root: Path, folder: Path, fp: str, parts: Mapping[str, Any], allow_build: bool,
           log: Callable[[str], None]) -> Optional[Cache]:
    """The complete cache for these settings, if it can be reused (a damaged one is rebuilt when allowed)."""
    try:
        if read_manifest(folder) is not None:
            cache = open_cache(folder, expected_fingerprint=fp, full_check=True)  # every file's digest
            log(f"Reusing cache {folder} (fingerprint {fp[:16]}; every file checked against its digest).")
            return cache
        legacy = _legacy_cache(root, parts)
        if legacy is not None:
            log(f"Reusing cache {legacy.folder}: built for these settings by a latentbridge from before "
                "issue 10, whose fingerprint hashed files with blake2b.")
        return legacy
    except UserError as e:
        if not allow_build:
            raise
        log(f"Rebuilding the cache: {e}")
        return None


def _manifest(fp: str, parts: Mapping[str, Any], spec: CacheSpec, tok: Tokenizers,
              splits: Mapping[str, Mapping[str, SplitStream]]) -> dict[str, Any]:
    source_names = sorted({n for by_split in splits.values() for s in by_split.values() for n in s.source_names})
    if len(source_names) > 255:
        raise ValueError("more than 255 sources")
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION, "preprocess_format": spec.format,
            "fingerprint": fp, "fingerprint_parts": parts, "library_versions": library_versions(),
            "latent_dtype": "int8" if spec.int8 else "float32", "fields": spec.fields(),
            "pad_token_id": pad_token_id(tok.decoder),
            "target_end_id": tok.decoder.eos_token_id if tok.target_end_id is None else tok.target_end_id,
            "source_names": source_names}


def build_cache(root: Path | str, fingerprint_parts: Mapping[str, Any],
                load_splits: Callable[[], Mapping[str, Mapping[str, SplitStream]]],
                load_model: Callable[[], tuple[Tokenizers, EncodeFn]], spec: CacheSpec,
                reuse: bool = True, progress: Optional[Progress] = None,
                log: Callable[[str], None] = print,
                before_commit: Optional[Callable[[Path], None]] = None, allow_build: bool = True,
                shards: Shards = Shards()) -> BuildResult:
    """Reuse the complete cache for these settings, or build it atomically, streaming chunk by chunk.

    `fingerprint_parts` must name everything that changes content besides `spec` (models, tokenizers,
    datasets, caps, seed); `load_splits()` -> {collection: {split: SplitStream}} and `load_model()` ->
    (tokenizers, encode) are only called when a build is needed. `before_commit(folder)` may add files
    (e.g. the encoder state) to the folder being built; they are recorded and checked like the rest.
    With `allow_build` off, a missing or damaged cache is a UserError instead of a build. Under several
    processes every rank calls this with its `shards`; all of them return the same cache.
    """
    t0 = time.perf_counter()
    progress = progress or NullProgress()
    if spec.format not in CACHE_FORMATS:
        raise UserError(f"preprocess_format: {spec.format!r} is not supported; expected one of {', '.join(CACHE_FORMATS)}.")
    parts = {"cache_version": CACHE_VERSION, "spec": spec.content_parts(), **fingerprint_parts}
    fp = fingerprint(parts)
    folder = cache_dir_for(root, fp)
    clean_stale_builds(Path(root))  # what killed builds left behind
    existed = folder.exists()
    found = _reuse(Path(root), folder, fp, parts, allow_build, log) if reuse and shards.rank == 0 else None
    reused = shards.share(str(found.folder) if found is not None else None)
    if reused is not None:
        cache = found if found is not None else open_cache(reused)
        return BuildResult(cache, True, time.perf_counter() - t0)
    if not allow_build:
        raise UserError(f"No complete preprocessed cache for these settings in {root} (fingerprint {fp[:16]}), "
                        "and run_preprocessing is off. Run `python main.py --mode preprocess` with the same "
                        "settings first, or pass --run-preprocessing.")
    splits = load_splits()
    tok, encode = load_model()
    manifest = _manifest(fp, parts, spec, tok, splits)
    if shards.count == 1:
        folder = _build(folder, manifest, splits, tok, encode, spec, progress, log, before_commit, existed)
    else:
        folder = build_sharded(folder, manifest, splits, tok, encode, spec, progress, log, before_commit, existed,
                               shards)
    close = getattr(progress, "close", None)
    if close:
        close()
    cache = open_cache(folder, expected_fingerprint=fp)
    log(f"Cache written to {folder} in {time.perf_counter() - t0:.1f}s.")
    return BuildResult(cache, False, time.perf_counter() - t0)


def _build(folder: Path, manifest: dict[str, Any], splits: Mapping[str, Mapping[str, SplitStream]],
           tok: Tokenizers, encode: EncodeFn, spec: CacheSpec, progress: Progress, log: Callable[[str], None],
           before_commit: Optional[Callable[[Path], None]], existed: bool) -> Path:
    """One process: encode every split straight into the cache's files, then commit."""
    with CacheBuild(folder, manifest, write_offsets=spec.write_offsets_index) as build:
        latent_dim = None
        for collection, by_split in splits.items():
            for split, stream in by_split.items():
                writer = build.split_writer(collection, split)
                report = write_split(stream, writer, tok, encode, spec, Shards(), progress)
                latent_dim = same_latent_dim(latent_dim, report.latent_dim)
                summary = split_summary(writer.rel, stream, report, writer.count, spec, log)
                build.close_split(writer, stream.skipped.counts, **summary)
        return commit_build(build, latent_dim, before_commit, existed)
