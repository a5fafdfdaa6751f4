"""`python main.py --help` next to `python -c "import torch"`: medians of N runs, in one run.

Target (issue 2): --help takes at most 0.15 of the torch import. Run by hand:
    python bench/bench_help.py --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    commands = {
        "main.py --help": [sys.executable, "main.py", "--help"],
        "main.py --mode config --preset tiny": [sys.executable, "main.py", "--mode", "config", "--preset", "tiny"],
        "import torch": [sys.executable, "-c", "import torch"],
    }
    # Interleave the commands so a noisy spell of the machine hits all of them alike.
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(median_seconds(command, 1))
    torch_time = statistics.median(samples["import torch"])
    print(f"| command | median of {runs} (s) | ratio to `import torch` |")
    print("|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} | {median / torch_time:.3f} |")


if __name__ == "__main__":
    main()
