"""What the trainer is given: the run settings (`TrainSettings`), each stage's examples (`StageData`), and the
one way the loop and the validation read those examples (`stage_loader`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from latentbridge.data.loader import make_loader
from latentbridge.training.optim import PartRates


@dataclass(frozen=True)
class TrainSettings:
    """The run settings the loop needs (built from the Config by recipe.train_settings)."""

    learning_rate: float
    part_rates: Optional[PartRates] = None  # the rate of each kind of parameter (None: learning_rate for all)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    warmup_ratio: Optional[float] = None  # when set, replaces warmup_steps: a share of each stage's steps
    lr_scheduler_type: str = "linear"  # schedule.SCHEDULES
    min_lr_ratio: float = 0.0  # floor of cosine_with_min_lr, as a share of learning_rate
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0  # 0 disables clipping
    save_every: int = 500
    log_every: int = 10
    keep_last_checkpoints: int = 3
    async_checkpointing: bool = True
    checkpoint_dir: Path = Path("checkpoints")
    run_dir: Path = Path("runs")
    best_filenames: Mapping[str, str] = field(default_factory=dict)  # Stage.best_filename_field -> file name
    handoff_filename: str = "best_model.pt"
    seed: int = 0
    max_seq_len: int = 512  # live encoding of inputs (stages that do not read cached latents)
    max_target_len: int = 256
    num_workers: int = 0
    prefetch_factor: Optional[int] = None
    sample_max_tokens: int = 48  # greedy sample shown after each validation of a token stage
    eval_steps: Optional[int] = None  # validate every N optimizer steps of a stage and at its end (None: per epoch)
    eval_rouge_samples: int = 0  # token stages: greedy ROUGE on this many validation examples per validation
    eval_max_new_tokens: int = 48  # generation length of those ROUGE outputs
    early_stopping_patience: Optional[int] = None  # validations without improvement that end a stage
    best_model_metric: str = "loss"  # or "rougeL" (token stages with eval_rouge_samples; others use the loss)
    stop_after_steps: Optional[int] = None  # checkpoint and stop after this many optimizer steps in all (smoke runs)
    shard_layers: Optional[bool] = None  # FSDP over the backbone layers (training/sharding.py); None: if accelerate's FSDP

    @property
    def rates(self) -> PartRates:
        """The rate of each kind of parameter: part_rates, or learning_rate for all."""
        rate = self.learning_rate
        return self.part_rates or PartRates(new=rate, encoder=rate, decoder=rate, lora=rate)


@dataclass
class StageData:
    """A stage's examples: train and validation datasets (records as latentbridge.data.loader yields) and their collate."""

    train: Dataset
    validation: Optional[Dataset]
    collate: Callable[[list], dict]


def stage_loader(dataset: Dataset, indices: list[int], batch_size: int, collate: Callable, settings: TrainSettings,
                 device: torch.device) -> DataLoader:
    """Batches of `dataset[indices]` in that order, with the run's workers (pinned memory for a GPU)."""
    return make_loader(dataset, indices, batch_size, collate, seed=settings.seed, num_workers=settings.num_workers,
                       prefetch_factor=settings.prefetch_factor, pin_memory=device.type == "cuda")
