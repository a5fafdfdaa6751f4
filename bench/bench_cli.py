"""CLI start-up next to tyro on the same dataclass, and next to `import torch`: medians of N runs, in one run.

The tyro side is built from `Config` itself (`tyro.cli(Config)`: every field a flag, parsed into the frozen
dataclass, printed as JSON). Targets (issue 13): `main.py --help` and `main.py --mode config --format json`
each at most 0.8 x tyro doing the same; (issue 2) `--help` at most 0.15 of `import torch`. tyro is a bench
dependency only: `pip install -r requirements-bench.txt`. Run by hand:
    python bench/bench_cli.py --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYRO_CONFIG = """
import dataclasses, json, sys
sys.path.insert(0, "src")
import tyro
from latentbridge.config import Config
print(json.dumps(dataclasses.asdict(tyro.cli(Config)), indent=2))
"""
COMMANDS = {
    "main.py --help": ["main.py", "--help"],
    "tyro --help": ["-c", TYRO_CONFIG, "--help"],
    "main.py --mode config --format json": ["main.py", "--mode", "config", "--format", "json"],
    "tyro: parse, print json": ["-c", TYRO_CONFIG],
    "main.py --mode config --preset tiny": ["main.py", "--mode", "config", "--preset", "tiny"],
    "import torch": ["-c", "import torch"],
}
PAIRS = {"main.py --help": "tyro --help", "main.py --mode config --format json": "tyro: parse, print json"}


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    # Interleave the commands so a noisy spell of the machine hits all of them alike.
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, args in COMMANDS.items():
            samples[name].append(seconds(args))
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"| command | median of {runs} (s) | ratio to tyro | ratio to `import torch` |")
    print("|---|---|---|---|")
    for name, value in median.items():
        tyro = f"{value / median[PAIRS[name]]:.2f}" if name in PAIRS else ""
        print(f"| `{name}` | {value:.3f} | {tyro} | {value / median['import torch']:.3f} |")


if __name__ == "__main__":
    main()
