"""Writing one split of a build: its examples chunk by chunk (this rank's chunks, under several processes),
what was cut and skipped, and the summary its manifest entry records."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from latentbridge.data.build_progress import Progress
from latentbridge.data.cache import CacheBuild, SplitWriter
from latentbridge.data.data_specs import CacheSpec, Shards
from latentbridge.data.encoding.chunks import Chunk, EncodeFn, encode_chunk
from latentbridge.data.encoding.record_layout import jsonl_lines, npy_layout, npy_rows
from latentbridge.data.encoding.tokenize import Tokenizers, pad_token_id
from latentbridge.data.rows import FIRST_LINES
from latentbridge.data.sources import Example, SplitStream
from latentbridge.errors import UserError


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


def write_split(stream: SplitStream, writer: SplitWriter, tok: Tokenizers, encode: EncodeFn, spec: CacheSpec,
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
        report.latent_dim = same_latent_dim(report.latent_dim, part.latent_dim)
        report.truncated_inputs += part.truncated_inputs
        report.truncated_targets += part.truncated_targets
        report.add_cut(j, part.cut_where)
        _write_chunk(writer, part, spec, tok)
        progress.advance(len(examples))
    progress.finish()
    return report


def split_summary(rel: str, stream: SplitStream, report: SplitReport, count: int, spec: CacheSpec,
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


def same_latent_dim(known: Optional[int], new: Optional[int]) -> Optional[int]:
    if known is not None and new is not None and new != known:
        raise ValueError(f"encode returned latent dim {new}, earlier {known}")
    return known if new is None else new


def commit_build(build: CacheBuild, latent_dim: Optional[int], before_commit: Optional[Callable[[Path], None]],
                 existed: bool) -> Path:
    build.manifest["latent_dim"] = latent_dim or 0
    if before_commit is not None:
        before_commit(build.tmp)
    build.record_extra_files()
    return build.commit(replace=existed)
