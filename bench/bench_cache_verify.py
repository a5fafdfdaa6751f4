"""What it costs to check a reused cache by content: every file's digest, at realistic size.

    python bench/bench_cache_verify.py [--records 100000] [--runs 3] [--dir DIR]

Builds synthetic caches through the real writers (bench_cache.build_synthetic: `--records` records of the
base config's 8 x 256 latents and 16-111 target ids), in the formats a user picks: jsonl int8 (the
default), npy int8, jsonl fp32 (the largest). For each, in turn and `--runs` times (medians):

- sizes only: `open_cache(folder)`, what reuse checked before issue 14;
- full, warm: `open_cache(folder, full_check=True)`, every file's xxh3_128 (what reuse does now), with the
  files in the page cache, as right after preprocessing or a previous run;
- full, cold: the same after evicting the files from the page cache (posix_fadvise DONTNEED), as after a
  reboot or on another machine: bounded by the disk;
- sha256, warm: the same files through sha256, what manifests recorded from issue 10 to 14 (for scale);
- one epoch of reads: every record once, in shuffled batches of 32, through the reader the trainer uses
  (CacheDataset + Collate): a lower bound of what one epoch of training costs besides the model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from bench_cache import build_synthetic  # noqa: E402
from latentbridge.data.cache import open_cache  # noqa: E402
from latentbridge.data.loader import CacheDataset, Collate  # noqa: E402
from latentbridge.files import file_digest  # noqa: E402

FORMATS = (("jsonl", True), ("npy", True), ("jsonl", False))


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def evict(folder: Path) -> None:
    """Drop the files' pages from the page cache (they are clean: written and fsynced)."""
    for path in files_of(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(folder: Path) -> None:
    for path in files_of(folder):
        path.read_bytes()


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_epoch(folder: Path, batch: int = 32) -> float:
    split = open_cache(folder).split("dialogue", "train")
    ds, collate = CacheDataset(split), Collate(0)
    order = np.random.default_rng(0).permutation(len(split))
    t0 = time.perf_counter()
    for start in range(0, len(order), batch):
        collate(ds.__getitems__(order[start:start + batch].tolist()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_verify_", dir=args.dir))
    print(f"{args.records} records of 2 x (8, 256) latents, {args.runs} runs, under {root}")
    folders = {}
    for fmt, int8 in FORMATS:
        name = f"{fmt}, {'int8' if int8 else 'fp32'}"
        t = seconds(lambda: folders.__setitem__(name, build_synthetic(root / name.replace(", ", "-"), args.records,
                                                                        8, 256, int8, fmt)))
        print(f"built {name} in {t:.0f} s")
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for name, folder in folders.items():
            warm(folder)
            times.setdefault((name, "sizes"), []).append(seconds(lambda: open_cache(folder)))
            times.setdefault((name, "full warm"), []).append(seconds(lambda: open_cache(folder, full_check=True)))
            times.setdefault((name, "sha256 warm"), []).append(
                seconds(lambda: [file_digest(p, "sha256") for p in files_of(folder)]))
            evict(folder)
            times.setdefault((name, "full cold"), []).append(seconds(lambda: open_cache(folder, full_check=True)))
    print("| cache | size | sizes only (s) | full xxh3_128, warm (s) | full, cold (s) | sha256, warm (s) "
          "| one epoch of reads (s) | full warm / epoch | full cold / epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, folder in folders.items():
        size = sum(p.stat().st_size for p in files_of(folder))
        med = {kind: statistics.median(times[(name, kind)]) for kind in ("sizes", "full warm", "full cold", "sha256 warm")}
        epoch = one_epoch(folder)
        print(f"| {name} | {size / 2**30:.2f} GiB | {med['sizes']:.3f} | {med['full warm']:.2f} | {med['full cold']:.2f} "
              f"| {med['sha256 warm']:.2f} | {epoch:.1f} | {med['full warm'] / epoch:.3f} | {med['full cold'] / epoch:.3f} |")
    import shutil

    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
