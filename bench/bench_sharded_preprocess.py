"""`--mode preprocess` with 1 process and with 2 under torchrun, side by side (run by hand).

    python bench/bench_sharded_preprocess.py [--records 2000] [--rounds 2] [--encoder-hidden 256]

Both build the same cache (the tiny preset's models on a dialogue corpus of N training pairs, its own texts as
pretraining data) into fresh folders: one untimed build of each, then `--rounds` rounds, 1 and 2 processes
taking turns to go first, one torch thread per process; prints the wall and CPU times, their ratio per round,
and checks that the two caches hold the same bytes.
`--encoder-hidden H` encodes with a random ModernBERT H wide (4 layers) instead of the tiny one (64, 2), so
that encoding, the part the ranks share, weighs as it does at real size.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, load_average, ratio  # noqa: E402
from bench_preprocess_memory import ROOT, preprocess_args, write_dialogues  # noqa: E402
from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.data.corpus import corpus_texts  # noqa: E402
from latentbridge.models.tiny import TINY_HIDDEN, build_tiny_modernbert  # noqa: E402


def build(processes: int, assets: Path, data: Path, cache: Path, encoder: Optional[Path],
          hidden: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all its processes) of one build."""
    args = preprocess_args(ROOT, assets, data, cache, ["--torch-num-threads", "1", "--modernbert-hidden-dim",
                                                       str(hidden)], encoder)
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    cpu = _children_cpu()
    start = time.perf_counter()
    run = subprocess.run([*launcher, *args], cwd=cache.parent, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if run.returncode != 0:
        raise SystemExit(run.stdout[-2000:] + run.stderr[-2000:])
    return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every finished descendant that was waited for
    return usage.ru_utime + usage.ru_stime


def files(cache: Path) -> dict[str, bytes]:
    folder = next(p.parent for p in cache.glob("*/manifest.json"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--encoder-hidden", type=int, default=TINY_HIDDEN, help="width of the random encoder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = ensure_tiny_assets(tmp / "assets").root
        encoder = None
        if args.encoder_hidden != TINY_HIDDEN:
            encoder = tmp / "encoder"
            build_tiny_modernbert(corpus_texts(0), encoder, seed=0, hidden=args.encoder_hidden, layers=4)
        data = write_dialogues(tmp / "data", args.records)
        builds: dict[int, list[Path]] = {1: [], 2: []}

        def contender(processes: int):
            def run() -> dict[str, float]:
                cache = tmp / f"cache-{processes}-{len(builds[processes])}"
                builds[processes].append(cache)
                return {"cpu": build(processes, assets, data, cache, encoder, args.encoder_hidden)[1]}
            return run

        times = alternate({1: contender(1), 2: contender(2)}, args.rounds)  # one untimed build of each first
        same = files(builds[1][0]) == files(builds[2][0])
    print(f"# bench_sharded_preprocess: {args.records} training pairs, encoder hidden {args.encoder_hidden}, "
          f"{os.cpu_count()} CPUs, 1 torch thread a process, {args.rounds} rounds (who goes first alternating), "
          f"{load_average()}\n")
    print("| processes | wall (s), each round | CPU (s), each round | median wall (s) |\n|---:|---|---|---:|")
    for processes, runs in times.items():
        print(f"| {processes} | {', '.join(f'{w:.0f}' for w in runs['seconds'])} | "
              f"{', '.join(f'{c:.0f}' for c in runs['cpu'])} | {statistics.median(runs['seconds']):.0f} |")
    print(f"\n2 processes / 1 process, wall time: {ratio(times[2]['seconds'], times[1]['seconds']).describe()}; "
          f"caches byte-identical: {same}")

if __name__ == "__main__":
    main()
