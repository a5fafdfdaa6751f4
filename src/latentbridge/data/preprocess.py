"""Turn examples into cache records: tokenise, run the frozen encode function in length-sorted batches, write.

The encode function is any callable `encode(input_ids (B,T) long, attention_mask (B,T) long) -> latents
(B,K,D)` (or `(latents, latent_mask (B,K))` when K varies per row); it owns its device and dtype.
Inputs are tokenised with the encoder tokenizer (max_seq_len), targets twice: with the encoder tokenizer
(max_target_len) for target latents and with the decoder tokenizer for target ids (text tokens + EOS,
at most max_target_len); texts longer than that are cut and counted.

`build_cache` streams: each split is read `chunk_size` examples at a time, and a chunk is encoded and
appended to the split's files before the next one is read, so memory does not grow with the data. With
several processes (`Shards`), chunk j goes to rank j % N; rank 0 merges the ranks' shards in chunk order.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from latentbridge.data.cache import (CACHE_FORMAT, CACHE_VERSION, Cache, CacheBuild, SplitWriter, cache_dir_for,
                                     clean_stale_builds,
                                     encode_record, find_complete_cache, fingerprint, library_versions, open_cache,
                                     quantize_int8, read_manifest)
from latentbridge.data.progress import NullProgress, Progress
from latentbridge.data.rows import FIRST_LINES
from latentbridge.data.sources import Example, SplitStream
from latentbridge.errors import UserError
from latentbridge.files import with_legacy_digests, write_text_atomic

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
    chunk_size: int = 2048  # examples read, length-sorted, encoded and written at a time (and shared out by rank)

    def fields(self) -> list[str]:
        names = {"text": self.store_text, "input_ids": self.store_input_ids,
                 "attention_mask": self.store_attention_mask, "target_ids": self.store_target_ids,
                 "target_attention_mask": self.store_target_attention_mask}
        return [n for n, on in names.items() if on]

    def content_parts(self) -> dict[str, Any]:
        """The settings that change what is stored (batch size and sorting do not)."""
        parts = asdict(self)
        for k in ("batch_size", "sort_by_length", "chunk_size"):
            parts.pop(k)
        return parts


# --- tokenising ------------------------------------------------------------------------------


def _tokenize(tokenizer, texts: Sequence[str], max_len: int,
              special: bool = True) -> tuple[list[list[int]], list[bool]]:
    """(token ids cut to `max_len`, whether each text was cut). A text is cut when it was longer than
    CHARS_PER_TOKEN_LIMIT characters a token or the tokenizer truncated it (fast tokenizers keep the rest as
    `overflowing`; a slow one is only checked by characters)."""
    cut = [len(t) > max_len * CHARS_PER_TOKEN_LIMIT for t in texts]
    texts = [t[: max_len * CHARS_PER_TOKEN_LIMIT] for t in texts]
    out = tokenizer(list(texts), add_special_tokens=special, truncation=True, max_length=max_len)
    encodings = out.encodings or [None] * len(texts)
    truncated = [c or bool(e is not None and e.overflowing) for c, e in zip(cut, encodings)]
    return [list(ids) for ids in out["input_ids"]], truncated


def target_ids(tokenizer, texts: Sequence[str], max_len: int, end_id: Optional[int] = None) -> list[list[int]]:
    """Decoder target ids: the text's tokens (no BOS) then the end token (`end_id`, default EOS), at most
    `max_len` in all -- the layout Decoder.target_ids trains on."""
    return _target_ids(tokenizer, texts, max_len, end_id)[0]


def _target_ids(tokenizer, texts: Sequence[str], max_len: int,
                end_id: Optional[int] = None) -> tuple[list[list[int]], list[bool]]:
    eos = tokenizer.eos_token_id if end_id is None else end_id
    room = max_len - (1 if eos is not None else 0)
    if room > 0:
        ids, truncated = _tokenize(tokenizer, texts, max(room, 1), special=False)
    else:
        ids, truncated = [[] for _ in texts], [True] * len(texts)
    return [seq[:room] + ([eos] if eos is not None else []) for seq in ids], truncated


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
    truncated_inputs: int = 0         # inputs longer than max_seq_len tokens (cut)
    truncated_targets: int = 0        # targets longer than max_target_len tokens (cut for latents or for ids)
    cut_where: dict[str, list[str]] = field(default_factory=dict)  # "inputs"/"targets" -> where the first few are


def where_read(example: Example) -> str:
    """`data/train.jsonl line 4`: where an example was read, for messages."""
    return f"{example.file} {example.unit} {example.line}" if example.file else example.id


def _first_cut(examples: Sequence[Example], cut: Sequence[bool]) -> list[str]:
    return [where_read(e) for e, c in zip(examples, cut) if c][:FIRST_LINES]


def encode_chunk(examples: Sequence[Example], tok: Tokenizers, encode: EncodeFn, spec: CacheSpec) -> Chunk:
    enc_pad = pad_token_id(tok.encoder)
    inputs, cut_inputs = _tokenize(tok.encoder, [e.input_text for e in examples], spec.max_seq_len)
    targets, cut_targets = _tokenize(tok.encoder, [e.target_text for e in examples], spec.max_target_len)
    tgt_ids = None
    if spec.store_target_ids or spec.store_target_attention_mask:
        tgt_ids, cut_ids = _target_ids(tok.decoder, [e.target_text for e in examples], spec.max_target_len,
                                       tok.target_end_id)
        cut_targets = [a or b for a, b in zip(cut_targets, cut_ids)]
    info: dict = {}
    in_lat = encode_batched(encode, inputs, enc_pad, spec.batch_size, spec.sort_by_length, info)
    tg_lat = encode_batched(encode, targets, enc_pad, spec.batch_size, spec.sort_by_length, info)
    return Chunk(examples, in_lat, tg_lat, inputs, tgt_ids, info.get("k", 0),
                 int(in_lat[0].shape[-1]) if examples else 0, sum(cut_inputs), sum(cut_targets),
                 {"inputs": _first_cut(examples, cut_inputs), "targets": _first_cut(examples, cut_targets)})


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


def _row_values(chunk: Chunk, spec: CacheSpec, k: int) -> dict[str, np.ndarray]:
    """The unpadded values of record `k` for each array column of the npy format."""
    values: dict[str, np.ndarray] = {}
    for side, lat in (("input", chunk.input_latents[k]), ("target", chunk.target_latents[k])):
        if spec.int8:
            values[f"{side}_latents"], values[f"{side}_scales"] = quantize_int8(lat)
        else:
            values[f"{side}_latents"] = lat
    if spec.store_input_ids:
        values["input_ids"] = np.asarray(chunk.input_ids[k])
    elif spec.store_attention_mask:
        values["attention_mask"] = np.ones(len(chunk.input_ids[k]), dtype=np.uint8)
    if spec.store_target_ids:
        values["target_ids"] = np.asarray(chunk.target_ids[k])
    elif spec.store_target_attention_mask:
        values["target_attention_mask"] = np.ones(len(chunk.target_ids[k]), dtype=np.uint8)
    return values


def npy_rows(chunk: Chunk, spec: CacheSpec, layout: Mapping[str, Sequence]) -> tuple[list[bytes], dict[str, np.ndarray],
                                                                                     np.ndarray]:
    """(metadata lines, padded column blocks, lengths table) of a chunk in the npy format; `layout` as
    SplitWriter.layout (name -> [width, inner, dtype, pad])."""
    n = len(chunk.examples)
    names = list(layout)
    blocks = {name: np.full((n, width, *inner), pad, dtype=dtype)
              for name, (width, inner, dtype, pad) in layout.items()}
    lengths = np.zeros((n, len(names)), dtype=np.int32)
    lines = []
    for k, e in enumerate(chunk.examples):
        meta: dict[str, Any] = {"id": e.id, "source": e.source}
        if spec.store_text:
            meta["text"], meta["target_text"] = e.input_text, e.target_text
        lines.append((json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
        for c, (name, value) in enumerate(_row_values(chunk, spec, k).items()):
            if len(value) > blocks[name].shape[1]:
                raise ValueError(f"{name}: {len(value)} entries exceed the column width {blocks[name].shape[1]}")
            blocks[name][k, : len(value)] = value
            lengths[k, names.index(name)] = len(value)
    return lines, blocks, lengths


# --- several processes ----------------------------------------------------------------------


def _nothing() -> None:
    return None


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Shards:
    """This process's share of a cache build run by several (torchrun / accelerate launch).

    Chunk j of every split is encoded by rank j % count; each rank writes its chunks as shard files in the
    build folder, and rank 0 merges them, in chunk order, into the files a single process writes, then
    commits. `barrier()` waits for every rank; `share(value)` returns rank 0's value on every rank.
    """

    rank: int = 0
    count: int = 1
    barrier: Callable[[], None] = _nothing
    share: Callable[[Any], Any] = _same


SHARDS_DIR = "shards"
SHARD_DONE = "done.json"


# --- building --------------------------------------------------------------------------------


@dataclass
class BuildResult:
    cache: Cache
    reused: bool
    seconds: float


@dataclass
class SplitReport:
    """What writing one split found, for its manifest entry: chunk sizes (all ranks'), truncation counts."""

    chunks: list[int]
    truncated_inputs: int = 0
    truncated_targets: int = 0
    latent_dim: Optional[int] = None
    # "inputs"/"targets" -> [chunk index, where] of the first few cut, so that ranks' lists merge in data order
    cut_where: dict[str, list[list]] = field(default_factory=lambda: {"inputs": [], "targets": []})

    def add_cut(self, chunk: int, where: Mapping[str, list[str]]) -> None:
        """Add chunk `chunk`'s cut places (chunks come in data order); only the first few are kept."""
        for role, places in where.items():
            self.cut_where[role] = (self.cut_where.get(role, []) + [[chunk, p] for p in places])[:FIRST_LINES]

    def merge_cut(self, other: "SplitReport") -> None:
        """Add another rank's first few: each rank's are in data order, so the first few of all are among them."""
        for role, places in other.cut_where.items():
            merged = sorted(self.cut_where.get(role, []) + places, key=lambda p: p[0])
            self.cut_where[role] = merged[:FIRST_LINES]

    def first_cut(self, role: str) -> list[str]:
        """Where the first few cut inputs or targets were read, in data order."""
        return [place for _, place in self.cut_where.get(role, [])[:FIRST_LINES]]
    columns: Optional[list] = None  # the npy layout, as the manifest lists it (name, width, inner, dtype, pad)


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


def _chunks(stream: Iterable[Example], size: int) -> Iterator[list[Example]]:
    it = iter(stream)
    while block := list(itertools.islice(it, size)):
        yield block


def _write_chunk(writer: SplitWriter, part: Chunk, spec: CacheSpec, tok: Tokenizers) -> None:
    if spec.format == "jsonl":
        for e, line in zip(part.examples, jsonl_lines(part, spec)):
            writer.write(line, e.source)
        return
    if not writer.layout:
        writer.allocate(npy_layout(spec, part.k_slots, part.latent_dim, pad_token_id(tok.encoder),
                                   pad_token_id(tok.decoder)))
    lines, blocks, lengths = npy_rows(part, spec, writer.layout)
    for e, line in zip(part.examples, lines):
        writer.write(line, e.source)
    writer.write_columns(blocks, lengths)


def _write_split(stream: SplitStream, writer: SplitWriter, tok: Tokenizers, encode: EncodeFn, spec: CacheSpec,
                 shards: Shards, progress: Progress) -> SplitReport:
    """Encode this rank's chunks of `stream` into `writer` (every chunk with one process)."""
    report = SplitReport([])
    progress.start(f"preprocess {writer.rel}", stream.expected)
    for j, examples in enumerate(_chunks(stream, spec.chunk_size)):
        report.chunks.append(len(examples))
        if j % shards.count != shards.rank:
            progress.advance(len(examples))  # another rank's chunk: the ranks go through the data side by side
            continue
        part = encode_chunk(examples, tok, encode, spec)
        report.latent_dim = _same_latent_dim(report.latent_dim, part.latent_dim)
        report.truncated_inputs += part.truncated_inputs
        report.truncated_targets += part.truncated_targets
        report.add_cut(j, part.cut_where)
        _write_chunk(writer, part, spec, tok)
        progress.advance(len(examples))
    progress.finish()
    return report


def _split_summary(rel: str, stream: SplitStream, report: SplitReport, count: int, spec: CacheSpec,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Say what was skipped, cut and mixed in a split, and return it for its manifest entry."""
    if stream.skipped.counts:
        log(f"{rel}: skipped " + ", ".join(f"{n} {reason}" for reason, n in sorted(stream.skipped.counts.items())))
        for line in stream.skipped.describe():
            log(f"  {line}")
    if count == 0 and rel.endswith("/train"):
        raise UserError(_empty_training_split(rel, stream))
    truncated = {"inputs": report.truncated_inputs, "targets": report.truncated_targets,
                 "max_seq_len": spec.max_seq_len, "max_target_len": spec.max_target_len}
    if report.truncated_inputs or report.truncated_targets:
        log(f"{rel}: {report.truncated_inputs} of {count} inputs were longer than max_seq_len ({spec.max_seq_len} "
            f"tokens) and {report.truncated_targets} targets longer than max_target_len ({spec.max_target_len}); "
            "they were cut. Raise --max-seq-len / --max-target-len to keep more of them.")
        truncated["first"] = {role: report.first_cut(role) for role in ("inputs", "targets")}
        for role, n in (("inputs", report.truncated_inputs), ("targets", report.truncated_targets)):
            if n:
                more = ", ..." if n > len(truncated["first"][role]) else ""
                log(f"  cut {role}: {', '.join(truncated['first'][role])}{more}")
    summary: dict[str, Any] = {"skipped_rows": stream.skipped.where, "truncated": truncated}
    if stream.weights:
        total_w, total_n = sum(stream.weights.values()), max(count, 1)
        log(f"{rel}: mix realised " + ", ".join(
            f"{name} {stream.realised.get(name, 0)} ({100 * stream.realised.get(name, 0) / total_n:.1f}%, "
            f"weight {100 * w / total_w:.1f}%)" for name, w in stream.weights.items()))
        summary["weights"] = dict(stream.weights)
    return summary


def _empty_training_split(rel: str, stream: SplitStream) -> str:
    skipped = sum(stream.skipped.counts.values())
    why = f"all {skipped} of its rows were skipped ({'; '.join(stream.skipped.describe()) or 'see above'})" \
        if skipped else "it holds no rows"
    return (f"{rel} is empty: {why}. Training needs at least one example with an input and a target text; fix "
            "those rows, or point the dataset field at other data (docs/data.md).")


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
    if spec.format not in FORMATS:
        raise UserError(f"preprocess_format: {spec.format!r} is not supported; expected one of {', '.join(FORMATS)}.")
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
        folder = _build_sharded(folder, manifest, splits, tok, encode, spec, progress, log, before_commit, existed,
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
                report = _write_split(stream, writer, tok, encode, spec, Shards(), progress)
                latent_dim = _same_latent_dim(latent_dim, report.latent_dim)
                summary = _split_summary(writer.rel, stream, report, writer.count, spec, log)
                build.close_split(writer, stream.skipped.counts, **summary)
        return _commit(build, latent_dim, before_commit, existed)


def _same_latent_dim(known: Optional[int], new: Optional[int]) -> Optional[int]:
    if known is not None and new is not None and new != known:
        raise ValueError(f"encode returned latent dim {new}, earlier {known}")
    return known if new is None else new


def _commit(build: CacheBuild, latent_dim: Optional[int], before_commit: Optional[Callable[[Path], None]],
            existed: bool) -> Path:
    build.manifest["latent_dim"] = latent_dim or 0
    if before_commit is not None:
        before_commit(build.tmp)
    build.record_extra_files()
    return build.commit(replace=existed)


def _build_sharded(folder: Path, manifest: dict[str, Any], splits: Mapping[str, Mapping[str, SplitStream]],
                   tok: Tokenizers, encode: EncodeFn, spec: CacheSpec, progress: Progress,
                   log: Callable[[str], None], before_commit: Optional[Callable[[Path], None]], existed: bool,
                   shards: Shards) -> Path:
    """Several processes: each writes its chunks as a shard of the build folder (rank 0's), marks it done, and
    rank 0 merges the shards in chunk order and commits. The folder has no manifest until that commit, so an
    interrupted build never looks complete (and is swept as stale, its rank-0 process gone)."""
    owner = shards.rank == 0
    # rank 0 owns the build folder: leaving this block without a commit (any rank failed) removes it
    with CacheBuild(folder, manifest, write_offsets=spec.write_offsets_index) if owner else nullcontext() as build:
        tmp = Path(shards.share(str(build.tmp) if owner else None))
        reports = _write_shard(tmp / SHARDS_DIR / str(shards.rank), splits, tok, encode, spec, shards, progress,
                               manifest["source_names"])
        shards.barrier()  # every shard is complete (each rank wrote its done.json)
        committed = None
        if owner:
            latent_dim = _merge_shards(build, tmp / SHARDS_DIR, splits, reports, spec, shards.count, log)
            shutil.rmtree(tmp / SHARDS_DIR)
            committed = str(_commit(build, latent_dim, before_commit, existed))
        return Path(shards.share(committed))


def _write_shard(folder: Path, splits: Mapping[str, Mapping[str, SplitStream]], tok: Tokenizers, encode: EncodeFn,
                 spec: CacheSpec, shards: Shards, progress: Progress,
                 source_names: list[str]) -> dict[str, SplitReport]:
    """This rank's chunks of every split, written like a cache's split files under `folder`, then done.json."""
    reports = {}
    for collection, by_split in splits.items():
        for split, stream in by_split.items():
            writer = SplitWriter(folder, collection, split, True, source_names)
            report = _write_split(stream, writer, tok, encode, spec, shards, progress)
            report.columns = writer.close(source_names).get("columns")
            reports[writer.rel] = report
    done = {rel: asdict(r) for rel, r in reports.items()}
    write_text_atomic(folder / SHARD_DONE, json.dumps(done))
    return reports


def _merge_shards(build: CacheBuild, shards_dir: Path, splits: Mapping[str, Mapping[str, SplitStream]],
                  reports: Mapping[str, SplitReport], spec: CacheSpec, count: int,
                  log: Callable[[str], None]) -> Optional[int]:
    """Rank 0: the shards' records, chunk by chunk in the order one process writes them, into the build's files."""
    done = []
    for rank in range(count):
        path = shards_dir / str(rank) / SHARD_DONE
        if not path.exists():
            raise UserError(f"Shard {rank} of the cache build in {build.tmp} is incomplete (no {SHARD_DONE}); "
                            "preprocess again.")
        done.append({rel: SplitReport(**r) for rel, r in json.loads(path.read_text()).items()})
    latent_dim = None
    for collection, by_split in splits.items():
        for split, stream in by_split.items():
            writer = build.split_writer(collection, split)
            layout = next((d[writer.rel].columns for d in done if d[writer.rel].columns), None)
            if layout:  # the layout of the shard holding chunk 0, as one process allocates it
                writer.allocate({name: (width, tuple(inner), dtype, pad) for name, width, inner, dtype, pad in layout})
            readers = [_ShardSplit(shards_dir / str(rank), writer.rel, build.manifest["source_names"])
                       for rank in range(count)]
            for j, size in enumerate(reports[writer.rel].chunks):
                readers[j % count].copy_rows(writer, size)
            for rank_reports in done:
                latent_dim = _same_latent_dim(latent_dim, rank_reports[writer.rel].latent_dim)
            merged = SplitReport(reports[writer.rel].chunks, sum(d[writer.rel].truncated_inputs for d in done),
                                 sum(d[writer.rel].truncated_targets for d in done))
            for rank_reports in done:
                merged.merge_cut(rank_reports[writer.rel])
            summary = _split_summary(writer.rel, stream, merged, writer.count, spec, log)
            build.close_split(writer, stream.skipped.counts, **summary)
    return latent_dim


class _ShardSplit:
    """Sequential reads of one split of one shard (records in the order that rank wrote them)."""

    def __init__(self, folder: Path, rel: str, source_names: list[str]):
        base = folder / rel
        self.offsets = np.load(f"{base}.offsets.npy")
        self.codes = np.load(f"{base}.sources.npy")
        self.source_names = source_names
        self.lines = open(f"{base}.jsonl", "rb")
        self.columns = {p.name[len(base.name) + 1:-4]: np.load(p, mmap_mode="r")
                        for p in sorted(base.parent.glob(f"{base.name}.*.npy"))
                        if p.name[len(base.name) + 1:-4] not in ("offsets", "sources")}
        self.next = 0

    def copy_rows(self, writer: SplitWriter, n: int) -> None:
        a, b = self.next, self.next + n
        if b > len(self.codes):
            raise ValueError(f"shard {self.lines.name} holds {len(self.codes)} records, the merge asked for {b}")
        data = self.lines.read(int(self.offsets[b] - self.offsets[a]))
        for i in range(a, b):
            start, end = int(self.offsets[i] - self.offsets[a]), int(self.offsets[i + 1] - self.offsets[a])
            writer.write(data[start:end], self.source_names[self.codes[i]])
        if writer.layout and n:
            writer.write_columns({name: self._fit(name, self.columns[name][a:b], writer.layout[name])
                                  for name in writer.layout}, self.columns["lengths"][a:b])
        self.next = b

    @staticmethod
    def _fit(name: str, block: np.ndarray, spec: Sequence) -> np.ndarray:
        """A shard's column block at the merged layout's width (a narrower shard is padded)."""
        width, _, _, pad = spec
        if block.shape[1] == width:
            return block
        if block.shape[1] > width:
            raise ValueError(f"{name}: a shard holds {block.shape[1]} entries a row, the column width is {width}")
        out = np.full((len(block), width, *block.shape[2:]), pad, dtype=block.dtype)
        out[:, : block.shape[1]] = block
        return out
