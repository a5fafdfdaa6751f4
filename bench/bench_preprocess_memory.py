"""Peak memory of `--mode preprocess` against the size of the data (run by hand).

    python bench/bench_preprocess_memory.py [--records 2000] [--scale 10] [--no-run-pretraining] [--code DIR]

Writes a dialogue corpus of N and scale x N training pairs (the bundled corpus's generator under other seeds,
jsonl, 200 validation and 200 test pairs each), then runs `main.py --mode preprocess --preset tiny` on each
in a fresh cache folder, one after the other, and reports the wall time and the peak resident memory of the
process (ru_maxrss from wait4). With the tiny preset on a dataset other than its bundled one, stages 1-2
pretrain on the dataset's own texts, so the pretraining collection grows with it too (two documents a pair).
`--code DIR` runs another checkout's main.py (e.g. one from before the streaming build) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.data.corpus import SPLIT_SIZES, dialogue_rows  # noqa: E402


def write_dialogues(folder: Path, n_train: int) -> Path:
    """folder/{train,validation,test}.jsonl: n_train training pairs, the held-out splits of seed 0."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        written, seed = 0, 0
        while written < n_train:
            for row in dialogue_rows(seed)["train"][: n_train - written]:
                f.write(json.dumps({**row, "id": f"s{seed}-{row['id']}"}) + "\n")
                written += 1
            seed += 1
    for split in ("validation", "test"):
        rows = dialogue_rows(0)[split]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def preprocess_args(code: Path, assets: Path, data: Path, cache: Path, extra: list[str],
                    encoder: Optional[Path] = None) -> list[str]:
    """`main.py --mode preprocess --preset tiny` on `data`, with the tiny models of `assets` (or the encoder
    folder `encoder`) and cache `cache`."""
    flags = {"wikitext": "--wikitext-dataset", "arxiv": "--arxiv-dataset", "english": "--english-pretrain-dataset"}
    pretraining = [a for name, flag in flags.items() for a in (flag, str(assets / "data/pretrain" / f"{name}.jsonl"))]
    return [str(code / "main.py"), "--mode", "preprocess", "--preset", "tiny", "--no-use-tui",
            "--tiny-assets-dir", str(assets), "--dataset-name", str(data), "--preprocess-cache-dir", str(cache),
            "--modernbert-model", str(encoder or assets / "models/modernbert"),
            "--gpt2-model", str(assets / "models/gemma3"),
            *pretraining, *extra]


def preprocess(code: Path, assets: Path, data: Path, cache: Path, extra: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, last output line) of one `--mode preprocess` run."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *preprocess_args(code, assets, data, cache, extra)], cwd=cache.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(out[-3000:])
    return wall, usage.ru_maxrss / 1024, out.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=SPLIT_SIZES["train"], help="training pairs of the small corpus")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--no-run-pretraining", action="store_true", help="the dialogue collection only")
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout whose main.py runs")
    args = ap.parse_args()
    extra = ["--no-run-pretraining"] if args.no_run_pretraining else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = ensure_tiny_assets(tmp / "assets").root
        rows = []
        for n in (args.records, args.records * args.scale):
            data = write_dialogues(tmp / f"data{n}", n)
            wall, peak, last = preprocess(args.code, assets, data, tmp / f"cache{n}", extra)
            rows.append((n, wall, peak, last))
    print(f"# bench_preprocess_memory: {args.code}, {'dialogue only' if extra else 'dialogue + pretraining'}\n")
    print("| training pairs | wall (s) | peak RSS (MiB) | peak / smallest |\n|---:|---:|---:|---:|")
    for n, wall, peak, _ in rows:
        print(f"| {n:,} | {wall:.0f} | {peak:,.0f} | {peak / rows[0][2]:.2f} |")
    for n, _, _, last in rows:
        print(f"\n{n:,}: {last}")


if __name__ == "__main__":
    main()
