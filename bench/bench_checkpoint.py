"""How long the training loop is blocked per checkpoint: async vs synchronous, side by side.

    python bench/bench_checkpoint.py [--saves 3] [--params 100] [--device cpu|cuda] [--dir DIR]

Two states: a tiny one (nn.Linear(64, 64)) and one with ~`--params` million parameters plus
its AdamW state (exp_avg, exp_avg_sq), like a real save. For each, the same number of saves
in each mode, interleaved (sync, async, sync, async, ...):
- sync: `save()` with async_save=False: the loop waits for copy + write + hash + fsync + rename.
- async: `save()` returns after the copy; the write runs in the background. The next save
  starts only after the previous one committed (`wait()`, not counted), as in training
  when `save_every` is not absurdly small.
Blocked time per save is reported as the median over the saves (the first async save also
follows `prepare()`, which allocates the reused copy buffers at set-up; its cost is reported).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from latentbridge.training.checkpoint import AsyncCheckpointer, TrainState, config_fingerprint  # noqa: E402


def build_state(params_m: float, device: str) -> tuple[TrainState, int]:
    if params_m <= 0:
        model = nn.Linear(64, 64)
    else:
        width = 4096
        layers = max(1, round(params_m * 1e6 / (width * width + width)))
        model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)])
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()  # materialise exp_avg / exp_avg_sq
    n = sum(p.numel() for p in model.parameters())
    state = TrainState(stage="bench", model=model.state_dict(), optimizer=opt.state_dict(),
                       loop={"epoch": 0, "batch": 0}, config={"bench": True})
    return state, n


def measure(state: TrainState, root: Path, saves: int) -> dict[str, list[float]]:
    fp = config_fingerprint({"bench": 1})
    sync = AsyncCheckpointer(root / "sync", fingerprint=fp, keep_last=1, async_save=False)
    asyn = AsyncCheckpointer(root / "async", fingerprint=fp, keep_last=1, async_save=True)
    t0 = time.perf_counter()
    sync.prepare(state)
    asyn.prepare(state)  # the trainer does this at set-up, outside the loop
    prepare_s = (time.perf_counter() - t0) / 2
    out: dict[str, list[float]] = {"sync": [], "async": [], "async_write": [], "prepare": [prepare_s]}
    for i in range(1, saves + 1):
        t0 = time.perf_counter()
        sync.save(i, state)
        out["sync"].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        asyn.save(i, state)
        out["async"].append(time.perf_counter() - t0)
        asyn.wait()
        out["async_write"].append(time.perf_counter() - t0)
    sync.close()
    asyn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--params", type=float, default=100, help="millions of parameters of the large state")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder, removed after)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.dir))
    try:
        print(f"device {args.device}, {args.saves} saves per mode, writing under {root}")
        print("| state | params | bytes on disk | sync blocked (s) | async blocked, first (s) | async blocked, median (s) "
              "| async / sync | background write (s) | prepare() once (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, params_m in (("tiny", 0), (f"~{args.params:g}M + AdamW", args.params)):
            state, n = build_state(params_m, args.device)
            r = measure(state, root / label.split()[0], args.saves)
            size = sum(f.stat().st_size for f in (root / label.split()[0] / "sync").rglob("*") if f.is_file())
            sync_med = statistics.median(r["sync"])
            async_med = statistics.median(r["async"])
            print(f"| {label} | {n / 1e6:.1f}M | {size / 2**20:.1f} MiB | {sync_med:.4f} | {r['async'][0]:.4f} | "
                  f"{async_med:.4f} | {async_med / sync_med:.3f} | {statistics.median(r['async_write']):.3f} | {r['prepare'][0]:.3f} |")
            del state
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
