"""Which hash to use for file digests: sha256 (content fingerprints), blake2b (before issue 10), xxh3_128
(integrity of checkpoint and cache files since issue 14).

    python bench/bench_digest.py [--mib 512] [--runs 5] [--dir DIR]

Writes one file of `--mib` random MiB, reads it once to warm the page cache, then hashes it with each
function in turn (bench/common.py's harness: one untimed pass each, the order rotated each round) through one read loop (4 MiB
chunks). Reports the median MB/s of each and their ratio; so the number measures the hash, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import xxhash

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, load_average, ratio  # noqa: E402

CHUNK = 4 << 20
CANDIDATES: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "blake2b": lambda: hashlib.blake2b(digest_size=16),  # the width the cache used before
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
        times = alternate({name: (lambda new=new: hash_file(path, new)) for name, new in CANDIDATES.items()},
                          args.runs)
    seconds = {name: t["seconds"] for name, t in times.items()}
    mb = args.mib * (1 << 20) / 1e6
    print(f"{args.mib} MiB file, page cache warm, {args.runs} rounds (order rotated each round), {load_average()}")
    print("| hash | MB/s (median) | rate / sha256's: median/median (rounds min / median / max) |")
    print("|---|---|---|")
    for name, t in seconds.items():
        print(f"| {name} | {mb / statistics.median(t):.0f} | {ratio(seconds['sha256'], t).describe()} |")

if __name__ == "__main__":
    main()
