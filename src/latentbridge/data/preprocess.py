"""Turn examples into cache records: tokenise, run the frozen encode function in length-sorted batches, write.

The encode function is any callable `encode(input_ids (B,T) long, attention_mask (B,T) long) -> latents
(B,K,D)` (or `(latents, latent_mask (B,K))` when K varies per row); it owns its device and dtype.
Inputs are tokenised with the encoder tokenizer (max_seq_len), targets twice: with the encoder tokenizer
(max_target_len) for target latents and with the decoder tokenizer for target ids (text tokens + EOS,
at most max_target_len).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from latentbridge.data.cache import (CACHE_FORMAT, CACHE_VERSION, Cache, CacheBuild, cache_dir_for, clean_stale_builds,
                                     encode_record, find_complete_cache, fingerprint, library_versions, open_cache,
                                     quantize_int8, read_manifest)
from latentbridge.data.progress import NullProgress, Progress
from latentbridge.data.sources import Example, LoadedSplit
from latentbridge.errors import UserError
from latentbridge.files import with_legacy_digests

EncodeFn = Callable[[Any, Any], Any]
FORMATS = ("jsonl", "npy")
CHARS_PER_TOKEN_LIMIT = 32  # texts are cut to max_len * this many characters before tokenising


@dataclass(frozen=True)
class CacheSpec:
    """How records are made and stored (built from the config's cache_* / preprocess_* fields)."""

    max_seq_len: int = 512
    max_target_len: int = 256
    batch_size: int = 32
    store_text: bool = False
    store_input_ids: bool = False
    store_attention_mask: bool = False
    store_target_ids: bool = True
    store_target_attention_mask: bool = True
    int8: bool = True
    write_offsets_index: bool = True
    format: str = "jsonl"
    sort_by_length: bool = True
    chunk_batches: int = 64  # examples are sorted by length within chunks of batch_size * chunk_batches

    def fields(self) -> list[str]:
        names = {"text": self.store_text, "input_ids": self.store_input_ids,
                 "attention_mask": self.store_attention_mask, "target_ids": self.store_target_ids,
                 "target_attention_mask": self.store_target_attention_mask}
        return [n for n, on in names.items() if on]

    def content_parts(self) -> dict[str, Any]:
        """The settings that change what is stored (batch size and sorting do not)."""
        parts = asdict(self)
        for k in ("batch_size", "sort_by_length", "chunk_batches"):
            parts.pop(k)
        return parts


# --- tokenising ------------------------------------------------------------------------------


def _tokenize(tokenizer, texts: Sequence[str], max_len: int, special: bool = True) -> list[list[int]]:
    texts = [t[: max_len * CHARS_PER_TOKEN_LIMIT] for t in texts]
    out = tokenizer(list(texts), add_special_tokens=special, truncation=True, max_length=max_len)
    return [list(ids) for ids in out["input_ids"]]


def target_ids(tokenizer, texts: Sequence[str], max_len: int, end_id: Optional[int] = None) -> list[list[int]]:
    """Decoder target ids: the text's tokens (no BOS) then the end token (`end_id`, default EOS), at most
    `max_len` in all -- the layout Decoder.target_ids trains on."""
    eos = tokenizer.eos_token_id if end_id is None else end_id
    room = max_len - (1 if eos is not None else 0)
    ids = _tokenize(tokenizer, texts, max(room, 1), special=False) if room > 0 else [[] for _ in texts]
    return [seq[:room] + ([eos] if eos is not None else []) for seq in ids]


def pad_token_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded (ids, mask), both (N, longest) int64; at least one column."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, mask


# --- encoding --------------------------------------------------------------------------------


def encode_batched(encode: EncodeFn, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int,
                   sort_by_length: bool = True, info: Optional[dict] = None) -> list[np.ndarray]:
    """Latents (K_i, D) float32 for each token sequence, in the given order.

    Batches are formed longest first after sorting by length (less padding; an out-of-memory shows
    on the first batch), and results are put back in the original order. `info["k"]` receives the
    largest K the encode function returned (its latent slots).
    """
    import torch  # only a cache build encodes; the recipe imports this module torch-free

    order = np.argsort([-len(s) for s in seqs], kind="stable") if sort_by_length else np.arange(len(seqs))
    out: list[Optional[np.ndarray]] = [None] * len(seqs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = pad_sequences([seqs[i] for i in idx], pad_id)
            result = encode(torch.from_numpy(ids), torch.from_numpy(mask))
            latents, lmask = result if isinstance(result, tuple) else (result, None)
            latents = latents.detach().float().cpu().numpy()
            lmask = None if lmask is None else lmask.detach().bool().cpu().numpy()
            if latents.ndim != 3 or latents.shape[0] != len(idx):
                raise ValueError(f"encode returned shape {tuple(latents.shape)}, expected ({len(idx)}, K, D)")
            if info is not None:
                info["k"] = max(info.get("k", 0), latents.shape[1])
            for r, i in enumerate(idx):
                out[i] = latents[r] if lmask is None else latents[r][lmask[r]]
    return out  # type: ignore[return-value]


@dataclass
class Tokenizers:
    encoder: Any
    decoder: Any
    target_end_id: Optional[int] = None  # token closing every target (None: the decoder's EOS)


@dataclass
class Chunk:
    """Encoded examples of one chunk, before they are written in either format."""

    examples: Sequence[Example]
    input_latents: list[np.ndarray]   # (K_i, D) each
    target_latents: list[np.ndarray]
    input_ids: list[list[int]]
    target_ids: Optional[list[list[int]]]
    k_slots: int                      # K of the encode function's output
    latent_dim: int


def encode_chunk(examples: Sequence[Example], tok: Tokenizers, encode: EncodeFn, spec: CacheSpec) -> Chunk:
    enc_pad = pad_token_id(tok.encoder)
    inputs = _tokenize(tok.encoder, [e.input_text for e in examples], spec.max_seq_len)
    targets = _tokenize(tok.encoder, [e.target_text for e in examples], spec.max_target_len)
    tgt_ids = target_ids(tok.decoder, [e.target_text for e in examples], spec.max_target_len, tok.target_end_id) \
        if spec.store_target_ids or spec.store_target_attention_mask else None
    info: dict = {}
    in_lat = encode_batched(encode, inputs, enc_pad, spec.batch_size, spec.sort_by_length, info)
    tg_lat = encode_batched(encode, targets, enc_pad, spec.batch_size, spec.sort_by_length, info)
    return Chunk(examples, in_lat, tg_lat, inputs, tgt_ids, info.get("k", 0),
                 int(in_lat[0].shape[-1]) if examples else 0)


def jsonl_lines(chunk: Chunk, spec: CacheSpec) -> list[bytes]:
    """One self-contained JSON line per example (the jsonl format)."""
    lines = []
    for k, e in enumerate(chunk.examples):
        extra: dict[str, Any] = {}
        if spec.store_text:
            extra["text"], extra["target_text"] = e.input_text, e.target_text
        if spec.store_input_ids:
            extra["input_ids"] = chunk.input_ids[k]
        if spec.store_attention_mask:
            extra["attention_mask"] = [1] * len(chunk.input_ids[k])
        if spec.store_target_ids:
            extra["target_ids"] = chunk.target_ids[k]
        if spec.store_target_attention_mask:
            extra["target_attention_mask"] = [1] * len(chunk.target_ids[k])
        lines.append(encode_record(e.id, e.source, chunk.input_latents[k], chunk.target_latents[k], spec.int8, extra))
    return lines


def npy_layout(spec: CacheSpec, k_slots: int, latent_dim: int, enc_pad: int, dec_pad: int) -> dict[str, tuple]:
    """Array columns of the npy format: name -> (width, inner shape, dtype, pad value)."""
    lat = "int8" if spec.int8 else "float32"
    layout: dict[str, tuple] = {}
    for side in ("input", "target"):
        layout[f"{side}_latents"] = (k_slots, (latent_dim,), lat, 0)
        if spec.int8:
            layout[f"{side}_scales"] = (k_slots, (), "float32", 0)
    if spec.store_input_ids:
        layout["input_ids"] = (spec.max_seq_len, (), "int32", enc_pad)
    elif spec.store_attention_mask:
        layout["attention_mask"] = (spec.max_seq_len, (), "uint8", 0)
    if spec.store_target_ids:
        layout["target_ids"] = (spec.max_target_len, (), "int32", dec_pad)
    elif spec.store_target_attention_mask:
        layout["target_attention_mask"] = (spec.max_target_len, (), "uint8", 0)
    return layout


def npy_rows(chunk: Chunk, spec: CacheSpec) -> list[tuple[bytes, dict[str, np.ndarray]]]:
    """(metadata line, array-column values) per example (the npy format)."""
    rows = []
    for k, e in enumerate(chunk.examples):
        meta: dict[str, Any] = {"id": e.id, "source": e.source}
        if spec.store_text:
            meta["text"], meta["target_text"] = e.input_text, e.target_text
        arrays: dict[str, np.ndarray] = {}
        for side, lat in (("input", chunk.input_latents[k]), ("target", chunk.target_latents[k])):
            if spec.int8:
                arrays[f"{side}_latents"], arrays[f"{side}_scales"] = quantize_int8(lat)
            else:
                arrays[f"{side}_latents"] = lat
        if spec.store_input_ids:
            arrays["input_ids"] = np.asarray(chunk.input_ids[k])
        elif spec.store_attention_mask:
            arrays["attention_mask"] = np.ones(len(chunk.input_ids[k]), dtype=np.uint8)
        if spec.store_target_ids:
            arrays["target_ids"] = np.asarray(chunk.target_ids[k])
        elif spec.store_target_attention_mask:
            arrays["target_attention_mask"] = np.ones(len(chunk.target_ids[k]), dtype=np.uint8)
        line = (json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        rows.append((line, arrays))
    return rows


# --- building --------------------------------------------------------------------------------


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


def build_cache(root: Path | str, fingerprint_parts: Mapping[str, Any],
                load_splits: Callable[[], Mapping[str, Mapping[str, LoadedSplit]]],
                load_model: Callable[[], tuple[Tokenizers, EncodeFn]], spec: CacheSpec,
                reuse: bool = True, progress: Optional[Progress] = None,
                log: Callable[[str], None] = print,
                before_commit: Optional[Callable[[Path], None]] = None, allow_build: bool = True) -> BuildResult:
    """Reuse the complete cache for these settings, or build it atomically.

    `fingerprint_parts` must name everything that changes content besides `spec` (models, tokenizers,
    datasets, caps, seed); `load_splits()` -> {collection: {split: LoadedSplit}} and `load_model()` ->
    (tokenizers, encode) are only called when a build is needed. `before_commit(folder)` may add files
    (e.g. the encoder state) to the folder being built; they are recorded and checked like the rest.
    With `allow_build` off, a missing or damaged cache is a UserError instead of a build.
    """
    t0 = time.perf_counter()
    progress = progress or NullProgress()
    if spec.format not in FORMATS:
        raise UserError(f"preprocess_format: {spec.format!r} is not supported; expected one of {', '.join(FORMATS)}.")
    parts = {"cache_version": CACHE_VERSION, "spec": spec.content_parts(), **fingerprint_parts}
    fp = fingerprint(parts)
    folder = cache_dir_for(root, fp)
    clean_stale_builds(Path(root))  # what killed builds left behind
    existed = folder.exists()
    if reuse:
        try:
            if read_manifest(folder) is not None:
                cache = open_cache(folder, expected_fingerprint=fp, full_check=True)  # every file's digest
                log(f"Reusing cache {folder} (fingerprint {fp[:16]}; every file checked against its digest).")
                return BuildResult(cache, True, time.perf_counter() - t0)
            legacy = _legacy_cache(root, parts)
            if legacy is not None:
                log(f"Reusing cache {legacy.folder}: built for these settings by a latentbridge from before "
                    "issue 10, whose fingerprint hashed files with blake2b.")
                return BuildResult(legacy, True, time.perf_counter() - t0)
        except UserError as e:
            if not allow_build:
                raise
            log(f"Rebuilding the cache: {e}")
    if not allow_build:
        raise UserError(f"No complete preprocessed cache for these settings in {root} (fingerprint {fp[:16]}), "
                        "and run_preprocessing is off. Run `python main.py --mode preprocess` with the same "
                        "settings first, or pass --run-preprocessing.")

    splits = load_splits()
    tok, encode = load_model()
    source_names = sorted({e.source for c in splits.values() for s in c.values() for e in s.examples})
    if len(source_names) > 255:
        raise ValueError("more than 255 sources")
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "preprocess_format": spec.format,
                "fingerprint": fp, "fingerprint_parts": parts, "library_versions": library_versions(),
                "latent_dtype": "int8" if spec.int8 else "float32", "fields": spec.fields(),
                "pad_token_id": pad_token_id(tok.decoder),
                "target_end_id": tok.decoder.eos_token_id if tok.target_end_id is None else tok.target_end_id,
                "source_names": source_names}
    chunk = spec.batch_size * spec.chunk_batches
    with CacheBuild(folder, manifest, write_offsets=spec.write_offsets_index) as build:
        latent_dim, k_slots = None, None
        for collection, by_split in splits.items():
            for split, loaded in by_split.items():
                writer = build.split_writer(collection, split, len(loaded.examples))
                progress.start(f"preprocess {collection}/{split}", len(loaded.examples))
                for start in range(0, len(loaded.examples), chunk):
                    part = encode_chunk(loaded.examples[start:start + chunk], tok, encode, spec)
                    if latent_dim is not None and part.latent_dim != latent_dim:
                        raise ValueError(f"encode returned latent dim {part.latent_dim}, earlier {latent_dim}")
                    latent_dim = part.latent_dim
                    if spec.format == "jsonl":
                        for e, line in zip(part.examples, jsonl_lines(part, spec)):
                            writer.write(line, e.source)
                    else:
                        if not writer.columns:
                            k_slots = max(part.k_slots, k_slots or 0)
                            writer.allocate(npy_layout(spec, k_slots, latent_dim, pad_token_id(tok.encoder),
                                                       pad_token_id(tok.decoder)))
                        for r, (e, (line, arrays)) in enumerate(zip(part.examples, npy_rows(part, spec))):
                            writer.write(line, e.source)
                            writer.write_row(start + r, arrays)
                    progress.advance(len(part.examples))
                progress.finish()
                if loaded.skipped:
                    log(f"{collection}/{split}: skipped " +
                        ", ".join(f"{n} {reason}" for reason, n in sorted(loaded.skipped.items())))
                build.close_split(writer, loaded.skipped)
        build.manifest["latent_dim"] = latent_dim or 0
        if before_commit is not None:
            before_commit(build.tmp)
        build.record_extra_files()
        folder = build.commit(replace=existed)
    close = getattr(progress, "close", None)
    if close:
        close()
    cache = open_cache(folder, expected_fingerprint=fp)
    log(f"Cache written to {folder} in {time.perf_counter() - t0:.1f}s.")
    return BuildResult(cache, False, time.perf_counter() - t0)
