"""The training loop's overhead: `Trainer` against a bare PyTorch loop on the same model, batches, AdamW, gradient
clipping and schedule (issue 13). Each round first checks that both give identical per-step losses and final
weights, then the rounds alternate the two and the medians are compared.

    python bench/bench_loop.py --assets /tmp/tiny-assets --rounds 5

Two stages of the tiny preset (1 torch thread, batch 32, synthetic records shaped like the cache's):
  latent  pretrain_middle: the transformer middle on (4, 64) latents, MSE + InfoNCE + stop; 3 epochs of 100 steps
          (the preset's stage 1: 3 of 107), a step checkpoint at step 50
  tokens  pretrain_adapter: the adapter and the decoder's 2 layers, token CE through the tiny Gemma; 1 epoch of
          40 steps, a step checkpoint at step 25
and two measures:
  steady state  the two loops in lockstep, one bare step after each Trainer step (both see the same load):
                batch size / the median step time over the steps between --warmup and the first step
                checkpoint (no validation, no save); a Trainer step is timed from the end of the bare
                step before it, so its bookkeeping between steps counts
  whole call    Trainer(...) + train(): set-up, the step checkpoint, per-epoch validation (96 examples), the
                best-model and hand-off saves, against the bare loop's set-up and epochs (it validates and
                saves nothing)
Rounds alternate which loop goes first. Steady state is also given paired: per step, the bare step's time over
the other's in the same lockstep turn, the median over the steady steps of every epoch (a noisy spell then
hits both sides of a pair); the A/A control's spread over the rounds bounds what the bench can resolve, and a
Trainer figure inside it is printed as "within noise".
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Ratio, load_average, ratio, within_noise  # noqa: E402

from latentbridge import recipe  # noqa: E402
from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.config import preset_config  # noqa: E402
from latentbridge.data.batch import INDEX, INPUT_LATENTS, TARGET_ATTENTION_MASK, TARGET_IDS, TARGET_LATENTS  # noqa: E402
from latentbridge.data.loader import Collate  # noqa: E402
from latentbridge.models.bridge import build_model, set_trainable  # noqa: E402
from latentbridge.models.runtime import resolve_runtime  # noqa: E402
from latentbridge.training.checkpoint import config_fingerprint  # noqa: E402
from latentbridge.training.schedule import build_scheduler  # noqa: E402
from latentbridge.training.stages import PRETRAIN_BEST, Stage  # noqa: E402
from latentbridge.training.epoch_batches import epoch_order  # noqa: E402
from latentbridge.training.trainer import StageData, StageObjective, Trainer, frozen_subtrees  # noqa: E402

STAGES = {  # the stage (3 epochs of 100 steps: the preset's stage 1 is 3 x 107), steps per epoch, checkpoint step
    "latent": (Stage("pretrain_middle", frozenset({"middle"}), "pretrain", "latent", True, PRETRAIN_BEST, 3, 32),
               100, 50),
    "tokens": (Stage("pretrain_adapter", frozenset({"adapter", "decoder"}), "pretrain", "tokens", False, PRETRAIN_BEST,
                     1, 32), 40, 25),
}


class Records(Dataset):
    """Cache-shaped records: (4, 64) input and target latents, 8-47 target ids of the tiny vocabulary."""

    def __init__(self, n: int, seed: int, k: int, dim: int, vocab: int) -> None:
        rng = np.random.default_rng(seed)
        self.rows = []
        for i in range(n):
            length = int(rng.integers(8, 48))
            self.rows.append({INPUT_LATENTS: rng.standard_normal((k, dim)).astype(np.float32),
                              TARGET_LATENTS: rng.standard_normal((k, dim)).astype(np.float32),
                              TARGET_IDS: rng.integers(5, vocab, size=length),
                              TARGET_ATTENTION_MASK: np.ones(length, dtype=np.int64), INDEX: i})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def tiny_config(assets: Path):
    return preset_config("tiny", tiny_assets_dir=str(assets), modernbert_model=str(assets / "models" / "modernbert"),
                         gpt2_model=str(assets / "models" / "gemma3"))


def bare_steps(model, stage: Stage, data: StageData, config, steps_per_epoch: int) -> Iterator[torch.Tensor]:
    """The loop anyone would write (modes once, AdamW, clip, schedule step, zero_grad), one step per next():
    yields each step's loss."""
    set_trainable(model, stage.trains)
    params = [p for p in model.parameters() if p.requires_grad]
    objective = StageObjective(model, stage, config.max_seq_len, config.max_target_len)
    objective.train()
    for module in frozen_subtrees(model):
        module.eval()
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = build_scheduler(optimizer, warmup_steps=config.warmup_steps, total_steps=steps_per_epoch * stage.epochs)
    for epoch in range(stage.epochs):
        loader = DataLoader(data.train, batch_size=stage.batch_size, collate_fn=data.collate,
                            sampler=epoch_order(len(data.train), config.seed, 0, epoch))
        for batch in loader:
            loss = objective(batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            yield loss.detach()


def trainer_run(model, stage: Stage, data: StageData, config, save_step: int, folder: Path,
                after_step: Optional[Callable[[], None]] = None) -> list[float]:
    """Trainer.train() on the one stage, calling `after_step` after each of its steps; its per-step losses.
    (The stage ends by loading its best epoch back: compare weights through `after_step`, not afterwards.)"""
    settings = dataclasses.replace(recipe.train_settings(config), checkpoint_dir=folder / "ckpt",
                                   run_dir=folder / "run", save_every=save_step)
    trainer = Trainer(model, (stage,), lambda s: data, settings, fingerprint=config_fingerprint({"bench": 1}),
                      config={}, accelerator=Accelerator(cpu=True))
    step, losses = trainer.train_step, []

    def recording(*args):
        out = step(*args)
        losses.append(out[0]["total"])
        if after_step is not None:
            after_step()
        return out

    trainer.train_step = recording
    trainer.train()
    return losses


def lockstep(kind: str, config, data: StageData, folder: Path, warmup: int) -> dict[str, float]:
    """Steady state: the Trainer and two bare loops step by step in turn (after each Trainer step one step of
    each bare loop, in alternating order), so all see the same load; the second bare loop against the first
    (an A/A control) shows the noise of the method. Checks identical losses, and weights at each epoch's end."""
    stage, steps_per_epoch, save_step = STAGES[kind]
    spec = recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config), "cpu"))
    bare_model, trainer_model = build_model(spec, seed=0), build_model(spec, seed=0)
    bares = [bare_steps(model, stage, data, config, steps_per_epoch) for model in (bare_model, build_model(spec, seed=0))]
    bare_losses, bare_times, control_times, trainer_times = [], [], [], []
    differing: list[tuple[int, str]] = []
    last = [time.perf_counter()]

    def bare_step() -> None:
        trainer_times.append(time.perf_counter() - last[0])  # from the end of the last bare step
        order = (0, 1) if len(trainer_times) % 2 else (1, 0)
        for i in order:
            start = time.perf_counter()
            loss = float(next(bares[i]))
            (bare_times if i == 0 else control_times).append(time.perf_counter() - start)
            if i == 0:
                bare_losses.append(loss)
        if len(trainer_times) % steps_per_epoch == 0:  # each epoch's last step: the same weights in both loops?
            theirs, ours = bare_model.trainable_state_dict(), trainer_model.trainable_state_dict()
            differing.extend((len(trainer_times), k) for k in theirs if not torch.equal(theirs[k], ours[k]))
        last[0] = time.perf_counter()

    losses = trainer_run(trainer_model, stage, data, config, save_step, folder, bare_step)
    if losses != bare_losses:
        raise SystemExit(f"{kind}: the Trainer's losses differ from the bare loop's: {losses[:3]} vs {bare_losses[:3]}")
    if differing:
        raise SystemExit(f"{kind}: after step {differing[0][0]} the Trainer's weights differ from the bare loop's "
                         f"({differing[0][1]})")
    steady = steady_steps(len(trainer_times), steps_per_epoch, save_step, warmup)
    rate = lambda times: stage.batch_size / statistics.median(times[i] for i in steady)  # noqa: E731
    paired = lambda times: statistics.median(bare_times[i] / times[i] for i in steady)  # noqa: E731
    return {"bare_steady": rate(bare_times), "trainer_steady": rate(trainer_times), "control_steady": rate(control_times),
            "trainer_paired": paired(trainer_times), "control_paired": paired(control_times)}


def steady_steps(steps: int, steps_per_epoch: int, save_step: int, warmup: int) -> list[int]:
    """The steps no save or validation precedes: every epoch's steps but its first `warmup` and the one after
    the step checkpoint (a Trainer step is timed from the end of the bare step before it)."""
    return [i for i in range(steps) if i % steps_per_epoch >= warmup and i != save_step]


def whole_calls(kind: str, config, data: StageData, folder: Path, trainer_first: bool) -> dict[str, float]:
    """Whole call: Trainer(...) + train() against the bare loop's set-up and epochs, one after the other."""
    stage, steps_per_epoch, save_step = STAGES[kind]
    spec = recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config), "cpu"))
    bare_model, trainer_model = build_model(spec, seed=0), build_model(spec, seed=0)
    seconds = {}
    for name in (("trainer", "bare") if trainer_first else ("bare", "trainer")):
        start = time.perf_counter()
        if name == "trainer":
            trainer_run(trainer_model, stage, data, config, save_step, folder)
        else:
            all(True for _ in bare_steps(bare_model, stage, data, config, steps_per_epoch))
        seconds[name] = time.perf_counter() - start
    return {f"{name}_whole": steps_per_epoch * stage.epochs * stage.batch_size / t for name, t in seconds.items()}


def one_round(kind: str, config, folder: Path, warmup: int, trainer_first: bool) -> dict[str, float]:
    stage, steps, _ = STAGES[kind]
    vocab = 1024
    data = StageData(Records(steps * stage.batch_size, 1, config.latent_seq_len, config.latent_dim, vocab),
                     Records(96, 2, config.latent_seq_len, config.latent_dim, vocab), Collate(target_pad_id=0))
    return {**lockstep(kind, config, data, folder / "lockstep", warmup),
            **whole_calls(kind, config, data, folder / "whole", trainer_first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, required=True, help="folder of the tiny assets (built when missing)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the steady state")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    a = parser.parse_args()
    torch.set_num_threads(1)
    ensure_tiny_assets(a.assets, seed=0)
    config = tiny_config(a.assets)
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in a.stages}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for kind in a.stages:  # interleaved: every round measures both loops of both stages
                results[kind].append(one_round(kind, config, Path(tmp) / f"{kind}-{r}", a.warmup, r % 2 == 1))
    print(f"{load_average()}\n")
    print("| stage | measure | against the bare loop | bare loop samples/s | its samples/s | ratio to bare: median/median "
          "(rounds min / median / max) |")
    print("|---|---|---|---:|---:|---:|")
    for kind, rounds in results.items():
        control = per_round([x["control_paired"] for x in rounds])
        for measure, other in (("steady", "trainer"), ("steady", "control"), ("paired", "trainer"),
                               ("paired", "control"), ("whole", "trainer")):
            key = "steady" if measure == "paired" else measure
            bare = statistics.median(x[f"bare_{key}"] for x in rounds)
            ours = statistics.median(x[f"{other}_{key}"] for x in rounds)
            if measure == "paired":
                r = per_round([x[f"{other}_paired"] for x in rounds])
            else:
                r = ratio([x[f"{other}_{key}"] for x in rounds], [x[f"bare_{key}"] for x in rounds])
            label = "A/A control: a second bare loop" if other == "control" else "Trainer"
            verdict = " within noise" if other == "trainer" and measure == "paired" and within_noise(r, control) else ""
            print(f"| {kind} | {measure} | {label} | {bare:,.0f} | {ours:,.0f} | {r.describe(3)}{verdict} |")
        print(f"| {kind} | paired | A/A spread: the most a round strays from 1 | | | {control.spread:.3f} |")


def per_round(values: list[float]) -> Ratio:
    """A Ratio of per-round ratios taken within each round (the paired step ratios)."""
    return Ratio(statistics.median(values), tuple(values))


if __name__ == "__main__":
    main()
