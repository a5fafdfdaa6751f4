"""Checkpoint saves, ours against torch.distributed.checkpoint (DCP), side by side in one run.

    python bench/bench_checkpoint.py [--rounds 6] [--params 100] [--step-batch 32] [--device cpu|cuda] [--dir DIR]
    python bench/bench_checkpoint.py --probe-mib 400      # why a save right after another one was slower
    python bench/bench_checkpoint.py --spaced 5 --states large   # sync saves `--spaced` s apart, keeping 3

States: a tiny one (nn.Linear(64, 64)), the real-size check's largest (the base preset's middle transformer,
3.2M parameters, built as bench/real_size.py trains it) and one of ~`--params` million parameters (24 x
Linear(4096, 4096) for 100M), each with its AdamW state (exp_avg, exp_avg_sq), like a real save. Three
pairs, each run through bench/common.py's harness (one untimed save of each first, then `--rounds`
rounds, who goes first alternating, a ratio per round):

- sync: `AsyncCheckpointer(async_save=False).save()` against `dcp.save(state_dict)`; the loop waits for
  the whole save.
- async, fence at once / fence after a step: `AsyncCheckpointer(background_copy=True).save()` then
  `wait_for_copy()` (the fence the trainer passes before `optimizer.step()`), against `dcp.async_save`
  with one DefaultStager kept across saves (staging in the background) then `staging_completion.result()`.
  "blocked" is the time in the save call and the fence; "completion" runs from the save call until the
  checkpoint is on disk. "After a step": one forward + backward on `--step-batch` rows between the save
  and the fence, as in training, where the copy overlaps that step.

Both sides keep one checkpoint and delete the one before, inside the timed save: ours through
`keep_last=1` (the previous one is deleted once the new one commits), DCP's folder right after its
save. The first save of each async saver also pays for fresh buffers (ours allocates them in `prepare()`,
as the trainer does at set-up, outside the timing; DCP's stager in its warm-up save).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, load_average, ratio, table  # noqa: E402

from latentbridge.training.checkpoint import AsyncCheckpointer, TrainState, config_fingerprint  # noqa: E402
from latentbridge.training.checkpoint.write import prune  # noqa: E402

warnings.filterwarnings("ignore", message="torch.distributed is disabled")  # DCP's note for a single process


def build_model(params_m: Optional[float]) -> nn.Module:
    """nn.Linear(64, 64) for 0, ~params_m million parameters as Linear(4096, 4096) layers, or (None) the base
    preset's middle transformer, the largest state the real-size check saves."""
    if params_m is None:
        from latentbridge.config import preset_config
        from latentbridge.models.middle import build_middle
        from latentbridge.recipe import middle_spec

        return build_middle(middle_spec(preset_config("base")))
    if params_m <= 0:
        return nn.Linear(64, 64)
    width = 4096
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(max(1, round(params_m * 1e6 / (width * width + width))))])


def build_state(model: nn.Module, device: str) -> TrainState:
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()  # materialise exp_avg / exp_avg_sq
    model.zero_grad(set_to_none=True)
    return TrainState(stage="bench", model=model.state_dict(), optimizer=opt.state_dict(),
                      loop={"epoch": 0, "batch": 0}, config={"bench": True})


def training_step(model: nn.Module, rows: int) -> Callable[[], None]:
    """One step's forward and backward (reads the weights, changes only the gradients); for a model that is
    not a stack of Linear layers, a pass reading every weight once stands in for it."""
    device = next(model.parameters()).device
    first = model[0] if isinstance(model, nn.Sequential) else model

    def step() -> None:
        if isinstance(first, nn.Linear):
            model(torch.randn(rows, first.in_features, device=device)).square().mean().backward()
        else:
            sum(p.square().sum() for p in model.parameters()).backward()
        model.zero_grad(set_to_none=True)
    return step


class Savers:
    """Our checkpointer and DCP on one state, each keeping one checkpoint and deleting the one before."""

    def __init__(self, state: TrainState, root: Path, cuda: bool) -> None:
        fp = config_fingerprint({"bench": 1})
        self.state, self.root, self.step = state, root, 0
        self.sync = AsyncCheckpointer(root / "ours-sync", fingerprint=fp, keep_last=1, async_save=False)
        self.asyn = AsyncCheckpointer(root / "ours-async", fingerprint=fp, keep_last=1, background_copy=True)
        self.asyn.prepare(state)  # the trainer does this at set-up, outside the loop
        self.dcp_state = {"model": dict(state.model), "optimizer": state.optimizer}
        self.stager = DefaultStager(StagingOptions(use_pinned_memory=cuda, use_shared_memory=False,
                                                   use_async_staging=True, use_non_blocking_copy=cuda))
        self.dcp_last: dict[str, Path] = {}

    def _next(self) -> int:
        self.step += 1
        return self.step

    def _dcp_folder(self, kind: str) -> Path:
        return self.root / f"dcp-{kind}-{self._next()}"

    def _dcp_keep_one(self, kind: str, folder: Path) -> None:
        if kind in self.dcp_last:
            shutil.rmtree(self.dcp_last[kind])
        self.dcp_last[kind] = folder

    def ours_sync(self) -> None:
        self.sync.save(self._next(), self.state)

    def dcp_sync(self) -> None:
        folder = self._dcp_folder("sync")
        dcp.save(self.dcp_state, checkpoint_id=str(folder), no_dist=True)
        self._dcp_keep_one("sync", folder)

    def ours_async(self, step: Optional[Callable[[], None]]) -> dict[str, float]:
        start = time.perf_counter()
        self.asyn.save(self._next(), self.state)
        saved = time.perf_counter() - start
        if step:
            step()
        fence = time.perf_counter()
        self.asyn.wait_for_copy()
        blocked = saved + time.perf_counter() - fence
        self.asyn.wait()
        return {"blocked": blocked, "completion": time.perf_counter() - start}

    def dcp_async(self, step: Optional[Callable[[], None]]) -> dict[str, float]:
        folder = self._dcp_folder("async")
        start = time.perf_counter()
        response = dcp.async_save(self.dcp_state, checkpoint_id=str(folder), async_stager=self.stager, no_dist=True)
        saved = time.perf_counter() - start
        if step:
            step()
        fence = time.perf_counter()
        response.staging_completion.result()
        blocked = saved + time.perf_counter() - fence
        response.upload_completion.result()
        self._dcp_keep_one("async", folder)
        return {"blocked": blocked, "completion": time.perf_counter() - start}

    def close(self) -> None:
        self.sync.close()
        self.asyn.close()
        self.stager.close()


def measure(state: TrainState, model: nn.Module, root: Path, rounds: int, step_rows: int,
            cuda: bool) -> dict[str, dict[str, dict[str, list[float]]]]:
    """pair -> contender -> measure -> per-round values, for the three pairs (sync, async at once, async after
    a step)."""
    savers = Savers(state, root, cuda)
    step = training_step(model, step_rows)
    try:
        return {
            "sync": alternate({"ours": savers.ours_sync, "dcp": savers.dcp_sync}, rounds),
            "async, fence at once": alternate({"ours": lambda: savers.ours_async(None),
                                               "dcp": lambda: savers.dcp_async(None)}, rounds),
            "async, fence after a step": alternate({"ours": lambda: savers.ours_async(step),
                                                    "dcp": lambda: savers.dcp_async(step)}, rounds),
        }
    finally:
        savers.close()


def spaced_saves(state: TrainState, root: Path, rounds: int, gap: float, keep: int = 3) -> dict[str, dict[str, list[float]]]:
    """Sync saves as training makes them, `gap` seconds apart (untimed), each side keeping `keep` checkpoints:
    ours as shipped (the oldest pruned before the write), ours pruning only after the commit (as before issue
    22), and DCP deleting its oldest folder after its save."""
    fp = config_fingerprint({"bench": 1})
    shipped = AsyncCheckpointer(root / "ours", fingerprint=fp, keep_last=keep, async_save=False)
    after = AsyncCheckpointer(root / "ours-after", fingerprint=fp, keep_last=None, async_save=False)
    dcp_folders: list[Path] = []
    steps = iter(range(1, 10**9))

    def timed(save: Callable[[], None]) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            time.sleep(gap)
            start = time.perf_counter()
            save()
            return {"save": time.perf_counter() - start}
        return run

    def ours_after() -> None:
        after.save(next(steps), state)
        prune(root / "ours-after", keep - 1, protect=after.wait())

    def dcp_keep() -> None:
        dcp_folders.append(root / f"dcp-{next(steps)}")
        dcp.save({"model": dict(state.model), "optimizer": state.optimizer}, checkpoint_id=str(dcp_folders[-1]),
                 no_dist=True)
        while len(dcp_folders) > keep:
            shutil.rmtree(dcp_folders.pop(0))

    contenders = {"ours": lambda: shipped.save(next(steps), state), "ours, pruning after the commit": ours_after,
                  "dcp": dcp_keep}
    for save in contenders.values():  # fill every side to `keep` checkpoints, untimed
        for _ in range(keep - 1):
            save()
    try:
        return alternate({name: timed(save) for name, save in contenders.items()}, rounds)
    finally:
        shipped.close()
        after.close()


def spaced_rows(label: str, r: dict) -> list[list[str]]:
    ours = r["ours"]["save"]
    return [[label, name, f"{statistics.median(m['save']):.3f}", ratio(ours, m["save"]).describe()]
            for name, m in r.items() if name != "ours"]


def rows_of(label: str, size_mib: float, r: dict) -> list[list[str]]:
    med = statistics.median
    sync = r["sync"]
    rows = [[label, f"{size_mib:.1f} MiB", "sync save", f"{med(sync['ours']['seconds']):.3f}",
             f"{med(sync['dcp']['seconds']):.3f}", ratio(sync["ours"]["seconds"], sync["dcp"]["seconds"]).describe()]]
    for pair in ("async, fence at once", "async, fence after a step"):
        ours, theirs = r[pair]["ours"], r[pair]["dcp"]
        rows.append([label, "", f"{pair}: completion", f"{med(ours['completion']):.3f}", f"{med(theirs['completion']):.3f}",
                     ratio(ours["completion"], theirs["completion"]).describe()])
        rows.append([label, "", f"{pair}: blocked", f"{med(ours['blocked']):.4f}", f"{med(theirs['blocked']):.4f}",
                     ratio(ours["blocked"], theirs["blocked"]).describe()])
        rows.append([label, "", f"{pair}: ours blocked / ours sync", "", "",
                     ratio(ours["blocked"], sync["ours"]["seconds"]).describe(3)])
    return rows


def probe_page_cache(folder: Path, mib: int, idle: float = 4.0) -> list[list[str]]:
    """Why a save right after another one is slower: the same `mib` written (and fsynced) three ways, each
    after `idle` seconds, in which this VM hands memory freed earlier back to its host."""
    block = os.urandom(1 << 20)

    def write(path: Path, truncate: bool = True) -> float:
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0))
        with os.fdopen(fd, "wb") as f:
            for _ in range(mib):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        return time.perf_counter() - start

    old, new = folder / "old.bin", folder / "new.bin"
    write(old)
    cases: dict[str, list[float]] = {}
    for _ in range(3):
        for name, run in (("a new file, the previous one kept (as a save, then pruning the one before)",
                           lambda: (write(new), new.unlink())[0]),
                          ("a new file right after deleting the previous one",
                           lambda: (old.unlink(), write(old))[1]),
                          ("the previous file overwritten in place", lambda: write(old, truncate=False))):
            time.sleep(idle)
            cases.setdefault(name, []).append(run())
    old.unlink()
    return [[name, f"{statistics.median(t):.3f}", " / ".join(f"{x:.3f}" for x in t)] for name, t in cases.items()]


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--params", type=float, default=100, help="millions of parameters of the large state")
    ap.add_argument("--step-batch", type=int, default=32, help="rows of the forward+backward between save and fence")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder, removed after)")
    ap.add_argument("--states", nargs="+", default=["tiny", "real-size", "large"],
                    choices=["tiny", "real-size", "large"])
    ap.add_argument("--probe-mib", type=int, default=0, help="only the page cache probe, writing this many MiB")
    ap.add_argument("--spaced", type=float, default=0, help="only sync saves this many seconds apart, keeping 3")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_ckpt_", dir=args.dir))
    try:
        print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.rounds} rounds, {load_average()}")
        if args.probe_mib:
            print(table(["write of " + f"{args.probe_mib} MiB + fsync", "median (s)", "3 tries (s)"],
                        probe_page_cache(root, args.probe_mib)))
            return
        params = {"tiny": 0, "real-size": None, "large": args.params}
        if args.spaced:
            rows = []
            for label in args.states:
                model = build_model(params[label])
                r = spaced_saves(build_state(model, args.device), root / label, args.rounds, args.spaced)
                count = sum(p.numel() for p in model.parameters())
                print(f"ours (s, median): {statistics.median(r['ours']['save']):.3f}")
                rows += spaced_rows(f"{label} ({count / 1e6:.1f}M + AdamW)", r)
            print(table(["state", f"sync saves {args.spaced:g} s apart, keeping 3: against", "its save (s, median)",
                         "ours / it: median/median (rounds min / median / max)"], rows))
            print(load_average())
            return
        rows = []
        for label in args.states:
            model = build_model(params[label])
            state = build_state(model, args.device)
            count = sum(p.numel() for p in model.parameters())
            folder = root / label
            r = measure(state, model, folder, args.rounds, args.step_batch, args.device.startswith("cuda"))
            size = sum(f.stat().st_size for f in (folder / "ours-sync").rglob("*") if f.is_file())
            rows += rows_of(f"{label} ({count / 1e6:.1f}M + AdamW)", size / 2**20, r)
            print(f"  {label} per round:", {pair: {who: {k: [round(x, 4) for x in v] for k, v in m.items()}
                                                   for who, m in c.items()} for pair, c in r.items()}, flush=True)
        print(table(["state", "on disk", "measure", "ours (s, median)", "DCP (s, median)",
                     "ours / DCP: median/median (rounds min / median / max)"], rows))
        print(load_average())
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
