"""The whole tiny pipeline (`--mode train --preset tiny`) in fresh folders: wall time and samples/s per stage.

Run by hand: `python bench/bench_tiny_pipeline.py --threads 1 2`. Each thread count gets its own run
(tiny assets, cache, checkpoints), so the rows are comparable within one invocation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pipeline(folder: Path, threads: int) -> tuple[float, dict[str, float]]:
    args = [sys.executable, "main.py", "--mode", "train", "--preset", "tiny", "--no-use-tui",
            "--torch-num-threads", str(threads), "--tiny-assets-dir", str(folder / "assets"),
            "--preprocess-cache-dir", str(folder / "cache"), "--checkpoint-dir", str(folder / "ckpt"),
            "--output-dir", str(folder / "run")]
    # the preset's model and data paths live under its assets folder: point them at this run's copy
    for field, sub in (("--modernbert-model", "models/modernbert"), ("--gpt2-model", "models/gemma3"),
                       ("--dataset-name", "data/samsum"), ("--wikitext-dataset", "data/pretrain/wikitext.jsonl"),
                       ("--arxiv-dataset", "data/pretrain/arxiv.jsonl"),
                       ("--english-pretrain-dataset", "data/pretrain/english.jsonl")):
        args += [field, str(folder / "assets" / sub)]
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    speeds: dict[str, list[float]] = {}
    for line in (folder / "run" / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("split", "train") == "train" and record.get("samples_per_s"):
            speeds.setdefault(record["stage"], []).append(record["samples_per_s"])
    return wall, {stage: statistics.median(values) for stage, values in speeds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    threads = parser.parse_args().threads
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in threads:
            rows.append((n, *run_pipeline(Path(tmp) / f"threads{n}", n)))
    stages = list(rows[0][2])
    print("| torch threads | wall (s) | " + " | ".join(f"{s} samples/s" for s in stages) + " |")
    print("|---|---|" + "---|" * len(stages))
    for n, wall, speeds in rows:
        print(f"| {n} | {wall:.0f} | " + " | ".join(f"{speeds.get(s, 0):.0f}" for s in stages) + " |")


if __name__ == "__main__":
    main()
