"""Checkpoint saves, ours against torch.distributed.checkpoint (DCP), side by side in one run.

    python bench/bench_checkpoint.py [--saves 5] [--params 100] [--step-batch 32] [--device cpu|cuda] [--dir DIR]

Two states: a tiny one (nn.Linear(64, 64)) and one with ~`--params` million parameters (24 x
Linear(4096, 4096) for 100M) plus its AdamW state (exp_avg, exp_avg_sq), like a real save. Per state,
`--saves` rounds, each running every saver in turn on the same state (a busy machine slows all alike):

- sync, ours: `AsyncCheckpointer(async_save=False).save()`: the loop waits for the whole save
  (safetensors files hashed as they are written, fsync, manifest, rename).
- sync, DCP: `dcp.save(state_dict)`: the loop waits for the whole save (torch.save per tensor, fsync).
- async, ours: `AsyncCheckpointer(background_copy=True).save()`, then `wait_for_copy()`, the fence the
  trainer passes before `optimizer.step()`; "blocked" is the time in both. Then `wait()` until the
  background write is committed: "completion", counted from the `save()` call.
- async, DCP: `dcp.async_save(state_dict, async_stager=<one DefaultStager, kept across saves, staging in
  the background>)`, then `staging_completion.result()`, DCP's fence; "completion" when its upload is done.

Each async saver runs twice a round: with the fence right after the save (blocked = the whole copy of the
state), and with one forward + backward of the model on `--step-batch` rows between the save and the
fence, as in training, where the copy overlaps that step. The first save of each also pays for fresh
buffers (ours allocates them in `prepare()`, as the trainer does at set-up; DCP's stager in its first
save). DCP's folders are deleted after each save, ours pruned by `keep_last=1`: both write the same bytes
to the same disk every time. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from latentbridge.training.checkpoint import AsyncCheckpointer, TrainState, config_fingerprint  # noqa: E402

warnings.filterwarnings("ignore", message="torch.distributed is disabled")  # DCP's note for a single process


def build_state(params_m: float, device: str) -> tuple[TrainState, nn.Module, torch.optim.Optimizer]:
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
    state = TrainState(stage="bench", model=model.state_dict(), optimizer=opt.state_dict(),
                       loop={"epoch": 0, "batch": 0}, config={"bench": True})
    return state, model, opt


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def forward_backward(model: nn.Module, rows: int) -> None:
    """One training step's forward and backward (reads the weights, changes only the gradients)."""
    if rows:
        x = torch.randn(rows, model[0].in_features if isinstance(model, nn.Sequential) else 64,
                        device=next(model.parameters()).device)
        model(x).square().mean().backward()


def measure(state: TrainState, model: nn.Module, root: Path, saves: int, step_rows: int,
            cuda: bool) -> dict[str, list[float]]:
    fp = config_fingerprint({"bench": 1})
    sync = AsyncCheckpointer(root / "ours-sync", fingerprint=fp, keep_last=1, async_save=False)
    asyn = AsyncCheckpointer(root / "ours-async", fingerprint=fp, keep_last=1, background_copy=True)
    dcp_state = {"model": dict(state.model), "optimizer": state.optimizer}
    stager = DefaultStager(StagingOptions(use_pinned_memory=cuda, use_shared_memory=False, use_async_staging=True,
                                          use_non_blocking_copy=cuda))
    out: dict[str, list[float]] = {}
    add = lambda key, seconds: out.setdefault(key, []).append(seconds)  # noqa: E731
    add("prepare", timed(lambda: asyn.prepare(state))[0])  # the trainer does this at set-up, outside the loop
    for i in range(1, saves + 1):
        add("ours_sync", timed(lambda: sync.save(i, state))[0])
        folder = root / f"dcp-sync-{i}"
        add("dcp_sync", timed(lambda: dcp.save(dcp_state, checkpoint_id=str(folder), no_dist=True))[0])
        shutil.rmtree(folder)
        for rows, tag in ((0, ""), (step_rows, "_step")):
            t0 = time.perf_counter()
            asyn.save(i, state)
            saved = time.perf_counter() - t0
            forward_backward(model, rows)
            add("ours_blocked" + tag, saved + timed(asyn.wait_for_copy)[0])
            asyn.wait()
            add("ours_done" + tag, time.perf_counter() - t0)

            folder = root / f"dcp-async-{i}{tag}"
            t0 = time.perf_counter()
            response = dcp.async_save(dcp_state, checkpoint_id=str(folder), async_stager=stager, no_dist=True)
            saved = time.perf_counter() - t0
            forward_backward(model, rows)
            add("dcp_blocked" + tag, saved + timed(response.staging_completion.result)[0])
            response.upload_completion.result()
            add("dcp_done" + tag, time.perf_counter() - t0)
            shutil.rmtree(folder)
            model.zero_grad(set_to_none=True)
    add("step", timed(lambda: forward_backward(model, step_rows))[0])
    sync.close()
    asyn.close()
    stager.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--saves", type=int, default=5)
    ap.add_argument("--params", type=float, default=100, help="millions of parameters of the large state")
    ap.add_argument("--step-batch", type=int, default=32, help="rows of the forward+backward between save and fence")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder, removed after)")
    ap.add_argument("--no-tiny", action="store_true", help="only the large state")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.dir))
    med = lambda r, key: statistics.median(r[key])  # noqa: E731
    try:
        print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.saves} rounds, writing under {root}")
        print("| state | on disk | sync: ours (s) | sync: DCP (s) | ours / DCP | async, fence at once: blocked ours "
              "/ DCP (s) | ours blocked / ours sync | completion ours / DCP (s) | ours / DCP | async, fence after a "
              "step: blocked ours / DCP (s) | ours blocked / ours sync | completion ours / DCP (s) | ours / DCP "
              "| step (s) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        sizes = (("tiny", 0),) if not args.no_tiny else ()
        for label, params_m in sizes + ((f"{args.params:g}M + AdamW", args.params),):
            state, model, _ = build_state(params_m, args.device)
            folder = root / label.split()[0]
            r = measure(state, model, folder, args.saves, args.step_batch, args.device.startswith("cuda"))
            size = sum(f.stat().st_size for f in (folder / "ours-sync").rglob("*") if f.is_file())
            cells = [label, f"{size / 2**20:.1f} MiB", f"{med(r, 'ours_sync'):.3f}", f"{med(r, 'dcp_sync'):.3f}",
                     f"{med(r, 'ours_sync') / med(r, 'dcp_sync'):.2f}"]
            for tag in ("", "_step"):
                cells += [f"{med(r, 'ours_blocked' + tag):.4f} / {med(r, 'dcp_blocked' + tag):.4f}",
                          f"{med(r, 'ours_blocked' + tag) / med(r, 'ours_sync'):.3f}",
                          f"{med(r, 'ours_done' + tag):.3f} / {med(r, 'dcp_done' + tag):.3f}",
                          f"{med(r, 'ours_done' + tag) / med(r, 'dcp_done' + tag):.2f}"]
            print("| " + " | ".join(cells + [f"{r['step'][0]:.3f}"]) + " |")
            print("  per round:", {k: [round(x, 3) for x in v] for k, v in r.items()})
            del state, model
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
