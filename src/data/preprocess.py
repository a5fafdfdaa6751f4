"""Turn examples into cache records: tokenise, run the frozen encode function in length-sorted batches, write.

The encode function is any callable `encode(input_ids (B,T) long, attention_mask (B,T) long) -> latents
(B,K,D)` (or `(latents, latent_mask (B,K))` when K varies per row); it owns its device and dtype.
Inputs are tokenised with the encoder tokenizer (max_seq_len), targets twice: with the encoder tokenizer
(max_target_len) for target latents and with the decoder tokenizer for target ids (text tokens + EOS,
at most max_target_len).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from src.data.cache import (CACHE_FORMAT, CACHE_VERSION, Cache, CacheBuild, cache_dir_for, encode_record,
                            fingerprint, library_versions, open_cache, read_manifest)
from src.data.progress import NullProgress, Progress
from src.data.sources import Example, LoadedSplit
from src.errors import UserError

EncodeFn = Callable[[Any, Any], Any]
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


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, mask


# --- encoding --------------------------------------------------------------------------------


def encode_batched(encode: EncodeFn, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int,
                   sort_by_length: bool = True) -> list[np.ndarray]:
    """Latents (K_i, D) float32 for each token sequence, in the given order.

    Batches are formed longest first after sorting by length (less padding; an out-of-memory shows
    on the first batch), and results are put back in the original order.
    """
    import torch

    order = np.argsort([-len(s) for s in seqs], kind="stable") if sort_by_length else np.arange(len(seqs))
    out: list[Optional[np.ndarray]] = [None] * len(seqs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = _pad([seqs[i] for i in idx], pad_id)
            result = encode(torch.from_numpy(ids), torch.from_numpy(mask))
            latents, lmask = result if isinstance(result, tuple) else (result, None)
            latents = latents.detach().float().cpu().numpy()
            lmask = None if lmask is None else lmask.detach().bool().cpu().numpy()
            if latents.ndim != 3 or latents.shape[0] != len(idx):
                raise ValueError(f"encode returned shape {tuple(latents.shape)}, expected ({len(idx)}, K, D)")
            for r, i in enumerate(idx):
                out[i] = latents[r] if lmask is None else latents[r][lmask[r]]
    return out  # type: ignore[return-value]


@dataclass
class Tokenizers:
    encoder: Any
    decoder: Any
    target_end_id: Optional[int] = None  # token closing every target (None: the decoder's EOS)


def records_for(examples: Sequence[Example], tok: Tokenizers, encode: EncodeFn,
                spec: CacheSpec) -> tuple[list[bytes], int]:
    """(cache lines for a chunk of examples in their order, latent dim D)."""
    enc_pad = pad_token_id(tok.encoder)
    inputs = _tokenize(tok.encoder, [e.input_text for e in examples], spec.max_seq_len)
    targets = _tokenize(tok.encoder, [e.target_text for e in examples], spec.max_target_len)
    tgt_ids = target_ids(tok.decoder, [e.target_text for e in examples], spec.max_target_len, tok.target_end_id) \
        if spec.store_target_ids or spec.store_target_attention_mask else None
    in_lat = encode_batched(encode, inputs, enc_pad, spec.batch_size, spec.sort_by_length)
    tg_lat = encode_batched(encode, targets, enc_pad, spec.batch_size, spec.sort_by_length)
    lines = []
    for k, e in enumerate(examples):
        extra: dict[str, Any] = {}
        if spec.store_text:
            extra["text"], extra["target_text"] = e.input_text, e.target_text
        if spec.store_input_ids:
            extra["input_ids"] = inputs[k]
        if spec.store_attention_mask:
            extra["attention_mask"] = [1] * len(inputs[k])
        if spec.store_target_ids:
            extra["target_ids"] = tgt_ids[k]
        if spec.store_target_attention_mask:
            extra["target_attention_mask"] = [1] * len(tgt_ids[k])
        lines.append(encode_record(e.id, e.source, in_lat[k], tg_lat[k], spec.int8, extra))
    return lines, int(in_lat[0].shape[-1]) if examples else 0


# --- building --------------------------------------------------------------------------------


@dataclass
class BuildResult:
    cache: Cache
    reused: bool
    seconds: float


def build_cache(root: Path | str, fingerprint_parts: Mapping[str, Any],
                load_splits: Callable[[], Mapping[str, Mapping[str, LoadedSplit]]],
                load_model: Callable[[], tuple[Tokenizers, EncodeFn]], spec: CacheSpec,
                reuse: bool = True, progress: Optional[Progress] = None,
                log: Callable[[str], None] = print,
                before_commit: Optional[Callable[[Path], None]] = None) -> BuildResult:
    """Reuse the complete cache for these settings, or build it atomically.

    `fingerprint_parts` must name everything that changes content besides `spec` (models, tokenizers,
    datasets, caps, seed); `load_splits()` -> {collection: {split: LoadedSplit}} and `load_model()` ->
    (tokenizers, encode) are only called when a build is needed. `before_commit(folder)` may add files
    (e.g. the encoder state) to the folder being built; they are recorded and checked like the rest.
    """
    t0 = time.perf_counter()
    progress = progress or NullProgress()
    if spec.format != "jsonl":
        raise UserError(f"preprocess_format: {spec.format!r} is not supported; expected 'jsonl'.")
    parts = {"cache_version": CACHE_VERSION, "spec": spec.content_parts(), **fingerprint_parts}
    fp = fingerprint(parts)
    folder = cache_dir_for(root, fp)
    if reuse:
        try:
            if read_manifest(folder) is not None:
                cache = open_cache(folder, expected_fingerprint=fp)
                log(f"Reusing cache {folder} (fingerprint {fp[:16]}).")
                return BuildResult(cache, True, time.perf_counter() - t0)
        except UserError as e:
            log(f"Rebuilding the cache: {e}")

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
        latent_dim = None
        for collection, by_split in splits.items():
            for split, loaded in by_split.items():
                writer = build.split_writer(collection, split)
                progress.start(f"preprocess {collection}/{split}", len(loaded.examples))
                for start in range(0, len(loaded.examples), chunk):
                    part = loaded.examples[start:start + chunk]
                    lines, dim = records_for(part, tok, encode, spec)
                    if latent_dim is not None and dim != latent_dim:
                        raise ValueError(f"encode returned latent dim {dim}, earlier {latent_dim}")
                    latent_dim = dim
                    for e, line in zip(part, lines):
                        writer.write(line, e.source)
                    progress.advance(len(part))
                progress.finish()
                if loaded.skipped:
                    log(f"{collection}/{split}: skipped " +
                        ", ".join(f"{n} {reason}" for reason, n in sorted(loaded.skipped.items())))
                build.close_split(writer, loaded.skipped)
        build.manifest["latent_dim"] = latent_dim or 0
        if before_commit is not None:
            before_commit(build.tmp)
        build.record_extra_files()
        folder = build.commit()
    close = getattr(progress, "close", None)
    if close:
        close()
    cache = open_cache(folder, expected_fingerprint=fp)
    log(f"Cache written to {folder} in {time.perf_counter() - t0:.1f}s.")
    return BuildResult(cache, False, time.perf_counter() - t0)
