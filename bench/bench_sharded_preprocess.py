"""`--mode preprocess` with 1 process and with 2 under torchrun, side by side (run by hand).

    python bench/bench_sharded_preprocess.py [--records 2000] [--rounds 2]

Both build the same cache (the tiny preset's models on a dialogue corpus of N training pairs, its own texts as
pretraining data) into fresh folders, alternating 1 and 2 processes for `--rounds` rounds, one torch thread
per process; prints the wall times, their ratio, and checks that the two caches hold the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_preprocess_memory import ROOT, preprocess_args, write_dialogues  # noqa: E402
from latentbridge.assets import ensure_tiny_assets  # noqa: E402


def build(processes: int, assets: Path, data: Path, cache: Path) -> float:
    args = preprocess_args(ROOT, assets, data, cache, ["--torch-num-threads", "1"])
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    start = time.perf_counter()
    run = subprocess.run([*launcher, *args], cwd=cache.parent, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if run.returncode != 0:
        raise SystemExit(run.stdout[-2000:] + run.stderr[-2000:])
    return time.perf_counter() - start


def files(cache: Path) -> dict[str, bytes]:
    folder = next(p.parent for p in cache.glob("*/manifest.json"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = ensure_tiny_assets(tmp / "assets").root
        data = write_dialogues(tmp / "data", args.records)
        for r in range(args.rounds):
            for processes in (1, 2):
                cache = tmp / f"cache-{processes}-{r}"
                times[processes].append(build(processes, assets, data, cache))
        same = files(tmp / "cache-1-0") == files(tmp / "cache-2-0")
    print(f"# bench_sharded_preprocess: {args.records} training pairs, {os.cpu_count()} CPUs, 1 torch thread a "
          f"process\n")
    print("| processes | wall (s), each round | median (s) |\n|---:|---|---:|")
    for processes, walls in times.items():
        print(f"| {processes} | {', '.join(f'{w:.0f}' for w in walls)} | {statistics.median(walls):.0f} |")
    print(f"\n2 processes / 1 process: {statistics.median(times[2]) / statistics.median(times[1]):.2f} of the wall "
          f"time; caches byte-identical: {same}")


if __name__ == "__main__":
    main()
