"""A cache build run by several processes (torchrun / accelerate launch): each rank writes its chunks as a
shard of the build folder, and rank 0 merges the shards in chunk order and commits (`Shards`, data_specs.py)."""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from latentbridge.data.build_progress import Progress
from latentbridge.data.cache import CacheBuild, SplitWriter
from latentbridge.data.data_specs import CacheSpec, Shards
from latentbridge.data.encoding.chunks import EncodeFn
from latentbridge.data.encoding.splits import SplitReport, commit_build, same_latent_dim, split_summary, write_split
from latentbridge.data.encoding.tokenize import Tokenizers
from latentbridge.data.sources import SplitStream
from latentbridge.errors import UserError
from latentbridge.files import write_text_atomic

SHARDS_DIR = "shards"
SHARD_DONE = "done.json"


def build_sharded(folder: Path, manifest: dict[str, Any], splits: Mapping[str, Mapping[str, SplitStream]],
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
            committed = str(commit_build(build, latent_dim, before_commit, existed))
        return Path(shards.share(committed))


def _write_shard(folder: Path, splits: Mapping[str, Mapping[str, SplitStream]], tok: Tokenizers, encode: EncodeFn,
                 spec: CacheSpec, shards: Shards, progress: Progress,
                 source_names: list[str]) -> dict[str, SplitReport]:
    """This rank's chunks of every split, written like a cache's split files under `folder`, then done.json."""
    reports = {}
    for collection, by_split in splits.items():
        for split, stream in by_split.items():
            writer = SplitWriter(folder, collection, split, True, source_names)
            report = write_split(stream, writer, tok, encode, spec, shards, progress)
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
                latent_dim = same_latent_dim(latent_dim, rank_reports[writer.rel].latent_dim)
            merged = SplitReport(reports[writer.rel].chunks, sum(d[writer.rel].truncated_inputs for d in done),
                                 sum(d[writer.rel].truncated_targets for d in done))
            for rank_reports in done:
                merged.merge_cut(rank_reports[writer.rel])
            summary = split_summary(writer.rel, stream, merged, writer.count, spec, log)
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
