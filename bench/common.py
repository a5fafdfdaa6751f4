"""What the benchmarks share.

- The side-by-side harness every comparison uses (`alternate`, `round_orders`, `Ratio`): contenders run
  once untimed to warm up, then take turns, their order rotated each round (with two, who goes first
  alternates), and a ratio is reported per round (min / median / max) beside the ratio of the medians.
  On a shared machine a noisy spell hits whichever contender runs in it; pairing within a round and
  rotating the order keep that from looking like a difference.
- For the real-size benchmarks (bench/bench_memory.py, bench/bench_gpu.py, bench/real_size.py): the random
  published-size assets as Config fields, synthetic full-length batches, and one stage's training step
  exactly as the trainer runs it (Trainer.train_step).

Imports torch lazily so `--help` stays quick.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

REAL_SIZE_ROOT = ROOT / "cache" / "real_size"
# The real-size check's lengths and batch (bench/real_size.py): the bundled corpus' summaries are <= 24 tokens
# and its pretraining segments ~40, so targets of 32 are mostly full, as the doctor's estimate assumes.
CHECK_SETTINGS = {"batch_size": 4, "max_target_len": 32, "max_seq_len": 128, "max_generation_length": 16}


# --- the side-by-side harness ----------------------------------------------------------------

Contender = Callable[[], Optional[Mapping[str, float]]]


def round_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the contenders in each round: round r starts with the r-th (mod n), the others follow
    in turn, so each holds every position equally often (two contenders alternate who goes first)."""
    names = list(names)
    return [names[r % len(names):] + names[: r % len(names)] for r in range(rounds)]


def alternate(contenders: Mapping[str, Contender], rounds: int, *, warmup: bool = True,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, dict[str, list[float]]]:
    """Run every contender once per round in the rotated order of `round_orders`, after one untimed call
    of each (page cache, allocator, lazy imports) unless `warmup` is False.

    Returns contender -> measure -> one value per round. "seconds" is the call's wall time; a contender
    may also return its own measures as a mapping ({"blocked": 0.01, ...}), which are kept beside it."""
    if warmup:
        for fn in contenders.values():
            fn()
    out: dict[str, dict[str, list[float]]] = {name: {} for name in contenders}
    for order in round_orders(list(contenders), rounds):
        for name in order:
            start = clock()
            extra = contenders[name]()
            seconds = clock() - start
            extra = extra if isinstance(extra, Mapping) else {}  # other return values are the work's, not measures
            for key, value in {"seconds": seconds, **extra}.items():
                out[name].setdefault(key, []).append(value)
    return out


@dataclass(frozen=True)
class Ratio:
    """`ours` against `theirs` over paired rounds: the ratio of the medians and the ratio within each round."""

    of_medians: float
    per_round: tuple[float, ...]

    @property
    def low(self) -> float:
        return min(self.per_round)

    @property
    def median(self) -> float:
        return statistics.median(self.per_round)

    @property
    def high(self) -> float:
        return max(self.per_round)

    @property
    def spread(self) -> float:
        """How far the per-round ratios stray from 1 at most (0.03: every round within 0.97-1.03)."""
        return max(abs(self.low - 1), abs(self.high - 1))

    def describe(self, digits: int = 2) -> str:
        """Median/median, then the per-round min / median / max: `0.95 (rounds 0.91 / 0.95 / 1.02)`."""
        f = f"{{:.{digits}f}}"
        return (f"{f.format(self.of_medians)} (rounds {f.format(self.low)} / {f.format(self.median)} / "
                f"{f.format(self.high)})")


def ratio(ours: Sequence[float], theirs: Sequence[float]) -> Ratio:
    """Ours / theirs, paired by round (for times: below 1 means ours is faster; for rates, pass the times
    the other way round or divide rates)."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need the same number of rounds on both sides, got {len(ours)} and {len(theirs)}")
    return Ratio(statistics.median(ours) / statistics.median(theirs), tuple(a / b for a, b in zip(ours, theirs)))


def within_noise(claim: Ratio, control: Ratio) -> bool:
    """True when a claimed ratio is no further from 1 than an A/A control's per-round spread: then it is
    reported as "within noise", not as a figure."""
    return abs(claim.median - 1) <= control.spread


def load_average() -> str:
    """The 1/5/15-minute load averages (os.getloadavg), to print beside every figure."""
    import os

    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the real-size benchmarks ----------------------------------------------------------------


def asset_fields(assets: Any) -> dict[str, str]:
    """Config fields pointing a run at built assets (latentbridge.assets.TinyAssets): models, corpus."""
    data = assets.data_dir
    return {"modernbert_model": str(assets.encoder_dir), "gpt2_model": str(assets.decoder_dir),
            "dataset_name": str(data / "samsum"), "wikitext_dataset": str(data / "pretrain" / "wikitext.jsonl"),
            "arxiv_dataset": str(data / "pretrain" / "arxiv.jsonl"),
            "english_pretrain_dataset": str(data / "pretrain" / "english.jsonl")}


def synthetic_batch(model: Any, stage: Any, batch_size: int, encoder_len: int, target_len: int, seed: int = 0) -> dict:
    """A cache-shaped batch in which every text is as long as the config allows (the doctor's worst case): full
    latent sequences, `target_len` target ids, and texts of `encoder_len` encoder tokens for stages that encode."""
    import torch

    from latentbridge.data import batch as batch_keys
    from latentbridge.data.loader import Collate

    g = torch.Generator().manual_seed(seed)
    K, D = model.spec.encoder.latent_seq_len, model.spec.encoder.latent_dim
    vocab = model.decoder.model.config.vocab_size
    rows = []
    for i in range(batch_size):
        ids = torch.randint(10, vocab, (target_len,), generator=g)
        ids[-1] = model.decoder.end_id
        latents = [torch.nn.functional.normalize(torch.randn(K, D, generator=g), dim=-1).numpy() for _ in range(2)]
        rows.append({batch_keys.INDEX: i, batch_keys.INPUT_LATENTS: latents[0], batch_keys.TARGET_LATENTS: latents[1],
                     batch_keys.TARGET_IDS: ids.numpy(),
                     batch_keys.TARGET_ATTENTION_MASK: torch.ones(target_len, dtype=torch.long).numpy()})
    batch = Collate(target_pad_id=model.decoder.pad_id)(rows)
    if not stage.uses_cache:
        words = " ".join(f"word{i % 97}" for i in range(encoder_len * 2))  # longer than the limit: truncated to it
        batch[batch_keys.TEXT] = batch[batch_keys.TARGET_TEXT] = [words] * batch_size
    return batch


@dataclass
class StageStep:
    """One stage's training step on `model` as Trainer.train_step runs it (accelerate autocast, clipping, AdamW)."""

    model: Any
    stage: Any
    mixed_precision: str = "no"  # "bf16": autocast (also on a CPU, to measure what a GPU run holds)
    max_seq_len: int = 512
    max_target_len: int = 256
    learning_rate: float = 1e-5
    _parts: dict = field(default_factory=dict)
    _work: Any = None

    def __post_init__(self) -> None:
        import torch
        from accelerate import Accelerator

        from latentbridge.models.bridge import set_trainable
        from latentbridge.training.checkpoint import config_fingerprint
        from latentbridge.training.trainer import StageObjective, Trainer, TrainSettings, frozen_subtrees

        device = next(self.model.parameters()).device
        set_trainable(self.model, self.stage.trains)
        accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=self.mixed_precision)
        self._work = tempfile.TemporaryDirectory(prefix="latentbridge-bench-")  # removed by close()
        work = Path(self._work.name)
        settings = TrainSettings(learning_rate=self.learning_rate, checkpoint_dir=work / "ckpt", run_dir=work / "run",
                                 async_checkpointing=False)
        trainer = Trainer(self.model, (self.stage,), lambda s: None, settings, fingerprint=config_fingerprint({}),
                          config={}, accelerator=accelerator)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        objective = accelerator.prepare(StageObjective(self.model, self.stage, self.max_seq_len, self.max_target_len))
        trainer._frozen = frozen_subtrees(self.model)  # as Trainer._run_stage sets it: frozen parts in eval mode
        self._parts = {"trainer": trainer, "objective": objective, "params": params, "optimizer": optimizer,
                       "scheduler": scheduler}

    def run(self, batch: dict) -> float:
        """One optimizer step on `batch`; returns its seconds (CUDA synchronised)."""
        import torch

        p = self._parts
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync()
        start = time.perf_counter()
        p["trainer"].train_step(p["objective"], p["params"], p["optimizer"], p["scheduler"], [batch])
        sync()
        return time.perf_counter() - start

    def close(self) -> None:
        self._parts["trainer"].checkpointer.close()
        self._work.cleanup()


def stage_by_name(config: Any, name: str) -> Any:
    from latentbridge import recipe

    stages = {s.name: s for s in recipe.plan(config)}
    if name not in stages:
        raise SystemExit(f"stage {name!r} is not in this config's plan ({', '.join(stages)})")
    return stages[name]


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
