"""Which hash to use for file digests: sha256 (content fingerprints), blake2b (before issue 10), xxh3_128
(integrity of checkpoint and cache files since issue 14).

    python bench/bench_digest.py [--mib 512] [--runs 5] [--dir DIR]

Writes one file of `--mib` random MiB, reads it once to warm the page cache, then hashes it with each
function in turn (interleaved: sha256, blake2b, xxh3_128, sha256, ...) through one read loop (4 MiB
chunks). Reports the median MB/s of each and their ratio; so the number measures the hash, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import xxhash

CHUNK = 4 << 20
CANDIDATES: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "blake2b": lambda: hashlib.blake2b(digest_size=16),  # the width data/cache.py used before
    "xxh3_128": xxhash.xxh3_128,
}


def hash_file(path: Path, new: Callable[[], Any]) -> str:
    h = new()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "blob.bin"
        with open(path, "wb") as f:
            for _ in range(args.mib // 4):
                f.write(os.urandom(CHUNK))
        hash_file(path, hashlib.md5)  # warm the page cache
        times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
        for _ in range(args.runs):
            for name, new in CANDIDATES.items():
                t0 = time.perf_counter()
                hash_file(path, new)
                times[name].append(time.perf_counter() - t0)
    mb = args.mib * (1 << 20) / 1e6
    rate = {name: mb / statistics.median(t) for name, t in times.items()}
    print(f"{args.mib} MiB file, page cache warm, median of {args.runs} runs")
    print("| hash | MB/s | ratio to sha256 |")
    print("|---|---|---|")
    for name, r in rate.items():
        print(f"| {name} | {r:.0f} | {r / rate['sha256']:.2f} |")


if __name__ == "__main__":
    main()
