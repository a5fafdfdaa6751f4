"""One training loop for every stage: `Trainer.train()` runs the planned stages, `train_step()` is one update.

    for each stage (src/latentbridge/training/stages.py):
        freeze everything but stage.trains; AdamW + warmup/schedule over the trainable parameters
        for each epoch: a seeded order of the stage's examples (resumable mid-epoch)
            for each window of gradient_accumulation_steps micro-batches: train_step()
            log every log_every steps, validate every eval_steps steps, step checkpoint every save_every steps
        validate after every epoch (when eval_steps is none); the best validation goes to the stage's
        best-model file; early_stopping_patience validations without improvement end the stage
        the stage ends by loading its best weights back, so the next stage starts from them
    finally: the hand-off model file (best_model.pt) and summary.json

The trainer never reads the Config: src/latentbridge/recipe.py builds `TrainSettings` and the stages, and
`--mode train` (src/latentbridge/modes/train.py) the model, the data and the progress display.
Accelerate provides the device, autocast, backward, gradient clipping and DDP wrapping; accumulation
is explicit (`no_sync` on all but the last micro-batch) so a window is never split across a checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import psutil
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from latentbridge.data.loader import make_loader
from latentbridge.errors import UserError
from latentbridge.models.bridge import LatentBridge, set_trainable
from latentbridge.models.specs import SamplingSpec
from latentbridge.training.checkpoint import (MODEL_TENSORS, STATE_TENSORS, AsyncCheckpointer, ConfigFingerprint,
                                              LoadedCheckpoint, TrainState, capture_rng_state, load_model_file, restore,
                                              restore_optimizer, restore_rng_state, should_save)
from latentbridge.training.optim import PartRates, param_groups
from latentbridge.training.metrics import MetricsWriter, StepMetrics, tracker_values
from latentbridge.training.schedule import build_scheduler, optimizer_steps, warmup_steps_for
from latentbridge.training.stages import Stage
from latentbridge.training import sharding
from latentbridge.training.progress import NullDisplay, ProgressDisplay


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


@dataclass
class StageData:
    """A stage's examples: train and validation datasets (records as latentbridge.data.loader yields) and their collate."""

    train: Dataset
    validation: Optional[Dataset]
    collate: Callable[[list], dict]


@dataclass
class LoopState:
    """Where the pipeline is; saved in every step checkpoint (JSON) for an exact resume."""

    plan: list[str]
    stage_index: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already trained (always whole windows)
    step: int = 0            # optimizer steps in this stage
    global_step: int = 0     # optimizer steps over the whole pipeline (names the checkpoints)
    best_val: float = math.inf  # the stage's best selection score so far (lower is better: loss, or -rougeL)
    evals_since_best: int = 0  # validations of this stage since its best one (early stopping)
    best: dict[str, float] = field(default_factory=dict)  # stage -> validation loss of its best weights
    best_scores: dict[str, float] = field(default_factory=dict)  # stage -> its best best_model_metric value
    early_stopped: list[str] = field(default_factory=list)  # stages that early stopping ended
    trainable: dict[str, int] = field(default_factory=dict)  # stage -> trainable parameters (summary.json)
    metrics_lines: Optional[int] = None  # lines of metrics.jsonl when saved: a resume cuts the file back to them
    log_window: dict[str, Any] = field(default_factory=dict)  # sums since the last metrics line (_LogWindow)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Path) -> "LoopState":
        """The loop state a checkpoint file (`where`) holds; UserError naming it when a field is missing or malformed."""
        try:
            st = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:  # a required field is missing
            raise UserError(f"{where} is malformed: its loop state is incomplete ({exc}).") from None
        counters = (st.stage_index, st.epoch, st.batch_in_epoch, st.step, st.global_step)
        well_typed = (isinstance(st.plan, list) and isinstance(st.best, dict) and isinstance(st.best_val, (int, float))
                      and all(type(n) is int and n >= 0 for n in counters))
        if not well_typed:
            raise UserError(f"{where} is malformed: its loop state {dict(data)!r} has fields of the wrong type.")
        return st


@dataclass
class TrainResult:
    state: LoopState
    interrupted: bool
    handoff: Optional[Path]


class StageObjective(nn.Module):
    """forward(batch) -> {"loss": what the stage minimises, plus detached components}. Wrapped by DDP."""

    def __init__(self, model: LatentBridge, stage: Stage, max_seq_len: int, max_target_len: int) -> None:
        super().__init__()
        self.model, self.stage = model, stage
        self.max_seq_len, self.max_target_len = max_seq_len, max_target_len

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        m = self.model
        if self.stage.objective == "latent":
            latents, mask = self._latents(batch, "text", "input_latents", self.max_seq_len)
            target, target_mask = self._latents(batch, "target_text", "target_latents", self.max_target_len)
            return m.latent_loss(m.predict(latents, mask), target, target_mask)  # predict: (B, K, D)
        latents, mask = self.decoder_input(batch)
        ce = m.decoder_loss(m.prefix(latents, mask), batch["target_ids"], batch["target_attention_mask"])
        return {"loss": ce, "ce": ce.detach()}

    def decoder_input(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Latents the adapter reads: middle(input latents) when the stage uses the middle, else the target's own."""
        if not self.stage.uses_middle:
            return self._latents(batch, "target_text", "target_latents", self.max_target_len)
        latents, mask = self._latents(batch, "text", "input_latents", self.max_seq_len)
        if "middle" in self.stage.trains:
            return self.model.predict(latents, mask), None
        return self.model.predict_until_stop(latents, mask)   # as at inference: cut at the stop latent

    def _latents(self, batch, text_key: str, cached_key: str, max_len: int):
        """(latents, mask): read from the cache, or encoded live from the cached text when the stage does not use it."""
        if self.stage.uses_cache:
            return batch[cached_key], batch[f"{cached_key[:-1]}_mask"]
        if text_key not in batch:
            raise UserError(f"Stage {self.stage.name} encodes text live but the cache holds no text; "
                            "preprocess with --cache-store-text.")
        device = next(self.model.adapter.parameters()).device
        ids, mask = self.model.encoder.tokenize(batch[text_key], max_len, device)
        return self.model.encode(ids, mask)


def epoch_order(n: int, seed: int, stage_index: int, epoch: int) -> list[int]:
    """The example order of one epoch: a permutation fixed by (seed, stage, epoch), so a resume can skip into it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + stage_index * 10_007 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def frozen_subtrees(module: nn.Module) -> list[nn.Module]:
    """The largest submodules with parameters none of which train: kept in eval mode (no dropout) while training."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        return [module]
    return [m for child in module.children() for m in frozen_subtrees(child)]


TextScorer = Callable[[list[str], list[str]], Mapping[str, float]]  # (outputs, references) -> {"rougeL": ...}


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: each stage reports its own (on Linux the process's RSS high-water mark is reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the CPU figure is then the current RSS
        pass


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory since `reset_peak_memory`: allocated CUDA memory, or the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 2**20  # kB
    except (OSError, IndexError):
        return psutil.Process().memory_info().rss / 2**30


class Trainer:
    def __init__(self, model: LatentBridge, stages: tuple[Stage, ...], data_for: Callable[[Stage], StageData],
                 settings: TrainSettings, *, fingerprint: ConfigFingerprint, config: Mapping[str, Any],
                 accelerator: Any = None, display: Optional[ProgressDisplay] = None,
                 text_scorer: Optional[TextScorer] = None) -> None:
        """`text_scorer` scores the greedy outputs of token stages against their references (the ROUGE of
        evaluation/rouge.py, passed in by --mode train: training sits below evaluation in the layers)."""
        if settings.eval_rouge_samples and text_scorer is None:
            raise ValueError("eval_rouge_samples needs a text_scorer")
        self.model, self.stages, self.data_for, self.s = model, stages, data_for, settings
        self.text_scorer = text_scorer
        self.accelerator = accelerator or Accelerator(cpu=next(model.parameters()).device.type == "cpu")
        is_main = self.accelerator.is_main_process
        self.config = dict(config)
        self.display = display or NullDisplay()
        self.metrics = MetricsWriter(settings.run_dir, is_main=is_main)
        self.checkpointer = AsyncCheckpointer(settings.checkpoint_dir, fingerprint=fingerprint,
                                              keep_last=settings.keep_last_checkpoints,
                                              async_save=settings.async_checkpointing, is_main=is_main,
                                              background_copy=True)
        self._stop_requested = False
        self._frozen: list[nn.Module] = []
        self._last_saved_step: Optional[int] = None
        self._window = _LogWindow(time.perf_counter())
        self._logged_before: set[tuple[str, str, int]] = set()  # (split, stage, global_step) trackers already have
        self.sharded = sharding.wants_sharding(self.accelerator) if settings.shard_layers is None else settings.shard_layers
        if self.sharded and not sharding.is_sharded(model):
            sharding.shard_layers(model, self.accelerator.device)

    # ------------------------------------------------------------------ the pipeline

    def train(self, resume: Optional[LoadedCheckpoint] = None) -> TrainResult:
        """Run every stage from the start, or from `resume` (exactly where it stopped)."""
        state = self._start_state(resume)
        interrupted = False
        with self._stop_on_ctrl_c():
            try:
                while state.stage_index < len(self.stages) and not interrupted:
                    interrupted = self._run_stage(self.stages[state.stage_index], state, resume)
                    resume = None
                handoff = None if interrupted else self._write_handoff(state)
            finally:
                self.checkpointer.close()
                self._show_checkpoint_state()
                self.metrics.write_summary({"global_step": state.global_step, "interrupted": interrupted,
                                            "stages": state.plan, "best_validation_loss": state.best,
                                            "best_model_metric": self.s.best_model_metric,
                                            "best_scores": state.best_scores, "early_stopped": state.early_stopped,
                                            "trainable_parameters": state.trainable,
                                            "last_checkpoint": str(self.checkpointer.status().last_committed_path)})
                self.metrics.close()
        return TrainResult(state, interrupted, handoff)

    def _rates(self) -> PartRates:
        rate = self.s.learning_rate
        return self.s.part_rates or PartRates(new=rate, encoder=rate, decoder=rate, lora=rate)

    def _run_stage(self, stage: Stage, st: LoopState, resume: Optional[LoadedCheckpoint]) -> bool:
        """Train one stage to its end (True when stopped early: Ctrl-C or stop_after_steps)."""
        set_trainable(self.model, stage.trains)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._note_trainable(stage, st, params)
        self._frozen = frozen_subtrees(self.model)
        data = self.data_for(stage)
        accum = self.s.gradient_accumulation_steps
        batches_per_epoch = math.ceil(self._rank_share(len(data.train)) / stage.batch_size)
        steps_per_epoch = optimizer_steps(batches_per_epoch, 1, accum)
        total_steps = steps_per_epoch * stage.epochs
        optimizer = torch.optim.AdamW(param_groups(self.model, self._rates()), lr=self.s.learning_rate,
                                      weight_decay=self.s.weight_decay)
        scheduler = self._scheduler(optimizer, total_steps)
        objective = StageObjective(self.model, stage, self.s.max_seq_len, self.s.max_target_len)
        if not self.sharded:  # DDP; sharded layers reduce their own gradients, train_step averages the rest
            objective = self.accelerator.prepare(objective)
        if resume is not None:
            restore_optimizer(resume.path / STATE_TENSORS, optimizer, resume.optimizer)
            if self.sharded:
                sharding.shard_optimizer_state(optimizer)
            restore(resume.path / "state.json", "scheduler", scheduler.load_state_dict, resume.scheduler)
            restore(resume.path / STATE_TENSORS, "random generator", restore_rng_state, resume.rng)
        self.display.start_stage(stage.name, st.stage_index + 1, len(self.stages), epochs=stage.epochs,
                                 steps_per_epoch=steps_per_epoch, start_step=st.step)
        self.checkpointer.prepare(self._train_state(stage, st, optimizer, scheduler))  # allocate copy buffers now
        self._train_modes(objective)
        reset_peak_memory(self.accelerator.device)
        window = self._window = _LogWindow.resumed(st.log_window)
        st.log_window = {}

        ended_early = False
        while st.epoch < stage.epochs and not ended_early:
            for micro_batches in self._windows(data, stage, st):
                losses, grad_norm, samples, tokens = self.train_step(objective, params, optimizer, scheduler, micro_batches)
                st.batch_in_epoch += len(micro_batches)
                st.step += 1
                st.global_step += 1
                window.add(losses, samples, tokens)
                if st.step % self.s.log_every == 0 or st.step == total_steps:
                    self._log(stage, st, window, scheduler, grad_norm)
                    window = self._window = _LogWindow(time.perf_counter())
                if self._is_eval_step(st.step, total_steps):
                    if self._evaluate(stage, st, data) and st.step < total_steps:
                        ended_early = self._stop_early(stage, st)
                        break
                    self._train_modes(objective)  # validation left the model in eval mode
                if should_save(st.global_step, self.s.save_every):
                    self._save(stage, st, optimizer, scheduler)
                if self._should_stop(st):
                    if self._last_saved_step != st.global_step:
                        self._save(stage, st, optimizer, scheduler)
                    self.checkpointer.wait()
                    self._show_checkpoint_state()  # the caller says that it stopped (TrainResult.interrupted)
                    return True
                self._show_checkpoint_state()
            ended_early = ended_early or self._end_epoch(stage, st, data)
            self._train_modes(objective)

        self._end_stage(stage, st)
        del objective
        if self.accelerator.num_processes > 1:  # drop the stage's DDP wrapper (its hooks) before the next stage wraps
            self.accelerator.free_memory()  # again; one process has no wrapper, and its gc.collect() took 0.5 s a stage
        return False

    # ------------------------------------------------------------------ one optimizer update

    def train_step(self, objective: nn.Module, params: list[nn.Parameter], optimizer: torch.optim.Optimizer,
                   scheduler: Any, micro_batches: list[dict[str, Any]]) -> tuple[dict[str, float], float, int, int]:
        """Forward + backward over one accumulation window, clip, step (the modules' train/eval modes are set by
        `_train_modes`). Returns (mean losses, grad norm, samples, tokens)."""
        acc = self.accelerator
        sums: dict[str, torch.Tensor] = {}
        samples = tokens = 0
        for i, batch in enumerate(micro_batches):
            samples += len(batch["index"])
            if "target_attention_mask" in batch:  # counted on the host's copy: no wait for the device
                tokens += int(batch["target_attention_mask"].sum())
            batch = _to_device(batch, acc.device)
            sync = acc.no_sync(objective) if i < len(micro_batches) - 1 else nullcontext()
            with sync, acc.autocast():
                out = objective(batch)
                acc.backward(out["loss"] / len(micro_batches))
            for k, v in out.items():
                sums[k] = v.detach() if k not in sums else sums[k] + v.detach()
        grad_norm = self._sync_and_clip(params)
        self.checkpointer.wait_for_copy()  # a save in flight may still be copying the weights and moments
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        keys = list(sums)
        values = torch.stack([sums[k].float() for k in keys] + [grad_norm.float()]).tolist()  # one device sync a step
        losses = {("total" if k == "loss" else k): v / len(micro_batches) for k, v in zip(keys, values)}
        return losses, values[-1], samples, tokens

    def _train_modes(self, objective: nn.Module) -> None:
        """What trains in train mode (dropout on); frozen parts (a frozen middle in stage 4, the backbones) in
        eval mode, as at inference. Set at the stage's start and after each validation (which leaves the model in
        eval mode), not at every step: that walk over every module cost the tiny latent stage ~2.5 ms a step
        (issue 13; tested equal to setting them every step)."""
        objective.train()
        for module in self._frozen:
            module.eval()

    def _sync_and_clip(self, params: list[nn.Parameter]) -> torch.Tensor:
        """Average what DDP does not (the replicated parameters of a sharded model), clip to max_grad_norm (0: only
        measure), return the norm."""
        if self.sharded:
            sharding.average_replicated_grads(params)
            return sharding.clip_grad_norm_(params, self.s.max_grad_norm)
        if self.s.max_grad_norm > 0:
            return self.accelerator.clip_grad_norm_(params, self.s.max_grad_norm)
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))

    # ------------------------------------------------------------------ data

    def _rank_share(self, n: int) -> int:
        return n // self.accelerator.num_processes

    def _windows(self, data: StageData, stage: Stage, st: LoopState) -> Iterator[list[dict[str, Any]]]:
        """Accumulation windows of the rest of this epoch, starting after the batches already trained."""
        order = epoch_order(len(data.train), self.s.seed, st.stage_index, st.epoch)
        acc = self.accelerator
        mine = order[acc.process_index::acc.num_processes][: self._rank_share(len(order))]
        rest = mine[st.batch_in_epoch * stage.batch_size:]
        if not rest:
            return
        loader = self._loader(data.train, rest, stage.batch_size, data.collate)
        batches = iter(loader)
        while window := list(islice(batches, self.s.gradient_accumulation_steps)):
            yield window

    def _loader(self, dataset: Dataset, indices: list[int], batch_size: int, collate: Callable) -> DataLoader:
        return make_loader(dataset, indices, batch_size, collate, seed=self.s.seed, num_workers=self.s.num_workers,
                           prefetch_factor=self.s.prefetch_factor, pin_memory=self.accelerator.device.type == "cuda")

    # ------------------------------------------------------------------ epoch and stage ends

    @torch.no_grad()
    def validate(self, stage: Stage, data: StageData) -> Optional[dict[str, float]]:
        """Mean validation losses of the stage's objective (all ranks reduced), or None without validation data."""
        if data.validation is None or len(data.validation) == 0:
            return None
        acc = self.accelerator
        objective = StageObjective(self.model, stage, self.s.max_seq_len, self.s.max_target_len).eval()
        indices = list(range(len(data.validation)))[acc.process_index::acc.num_processes]
        if self.sharded:  # each forward gathers the sharded layers from every rank: all ranks run as many
            indices = indices[: len(data.validation) // acc.num_processes]
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for batch in self._loader(data.validation, indices, stage.batch_size, data.collate):
            batch = _to_device(batch, acc.device)
            with acc.autocast():
                out = objective(batch)
            rows = len(batch["index"])
            for k, v in out.items():
                sums[k] = sums.get(k, 0) + v.detach().float() * rows
            n += rows
        keys = sorted(sums)
        totals = acc.reduce(torch.stack([sums[k] for k in keys] + [torch.tensor(float(n), device=acc.device)]), "sum")
        return {("total" if k == "loss" else k): float(totals[i] / totals[-1].clamp_min(1)) for i, k in enumerate(keys)}

    def _is_eval_step(self, step: int, total_steps: int) -> bool:
        """With eval_steps: every eval_steps-th step of the stage, and its last one."""
        every = self.s.eval_steps
        return every is not None and (step % every == 0 or step == total_steps)

    def _end_epoch(self, stage: Stage, st: LoopState, data: StageData) -> bool:
        """Validate (when eval_steps is none) and move to the next epoch. True when early stopping ends the stage."""
        stop = self.s.eval_steps is None and self._evaluate(stage, st, data) and st.epoch + 1 < stage.epochs
        st.epoch += 1
        st.batch_in_epoch = 0
        return stop and self._stop_early(stage, st)

    def _evaluate(self, stage: Stage, st: LoopState, data: StageData) -> bool:
        """Validate, keep the best weights so far, count validations without improvement. True when
        early_stopping_patience of them came in a row."""
        val = self.validate(stage, data)
        rouge = self.validation_rouge(stage, data) if val is not None else {}
        if val is not None:
            m = StepMetrics(stage.name, st.epoch, st.step, val, global_step=st.global_step, split="validation",
                            extra={"rouge": rouge} if rouge else {})
            self._record(m)
        score = self._selection_score(stage, st, val, rouge)
        if score < st.best_val:
            self._keep_best(stage, st, score, val, rouge)
        else:
            st.evals_since_best += 1
        if stage.objective == "tokens" and data.validation is not None and len(data.validation):
            self._show_sample(stage, data)
        patience = self.s.early_stopping_patience
        return patience is not None and st.evals_since_best >= patience

    def _stop_early(self, stage: Stage, st: LoopState) -> bool:
        """Record and say that early stopping ends the stage before its budget; True."""
        st.early_stopped.append(stage.name)
        self.display.message(f"{stage.name}: early stopping at step {st.step}, {self.s.early_stopping_patience} "
                             f"validations without a better {self._metric(stage)} (best "
                             f"{st.best_scores.get(stage.name, float('nan')):.4g})")
        return True

    def _metric(self, stage: Stage) -> str:
        """The metric that picks this stage's best weights: rougeL only where the stage measures ROUGE."""
        rouge = stage.objective == "tokens" and self.s.eval_rouge_samples > 0
        return "rougeL" if self.s.best_model_metric == "rougeL" and rouge else "loss"

    def _selection_score(self, stage: Stage, st: LoopState, val: Optional[Mapping[str, float]],
                         rouge: Mapping[str, float]) -> float:
        """Lower is better. Without validation data the latest weights are the best."""
        if val is None:
            return -float(st.global_step)
        return -rouge["rougeL"] if self._metric(stage) == "rougeL" else val["total"]

    def _keep_best(self, stage: Stage, st: LoopState, score: float, val: Optional[Mapping[str, float]],
                   rouge: Mapping[str, float]) -> None:
        st.best_val, st.evals_since_best = score, 0
        if val is not None:
            st.best[stage.name] = val["total"]
            st.best_scores[stage.name] = rouge["rougeL"] if self._metric(stage) == "rougeL" else val["total"]
        path = self._best_path(stage)
        self.checkpointer.save_model(path, self._trainable_state(), config=self.config,
                                     step=st.global_step, stage=stage.name)
        self.display.message(f"{stage.name} epoch {st.epoch + 1} step {st.step}: best so far, saving {path.name}")

    def _end_stage(self, stage: Stage, st: LoopState) -> None:
        """Load the stage's best weights back (the next stage and the hand-off start from them), reset counters."""
        self.checkpointer.wait()
        self.accelerator.wait_for_everyone()  # rank 0 has committed the best file before anyone reads it
        best = self._best_path(stage)
        if best.exists():
            restore(best, "model", self._load_trainable, load_model_file(best).model)
        st.stage_index += 1
        st.epoch = st.batch_in_epoch = st.step = st.evals_since_best = 0
        st.best_val = math.inf

    def _write_handoff(self, state: LoopState) -> Optional[Path]:
        if not self.stages:
            return None
        path = self.s.checkpoint_dir / self.s.handoff_filename
        self.checkpointer.save_model(path, self._trainable_state(), config=self.config,
                                     step=state.global_step, stage=self.stages[-1].name)
        self.checkpointer.wait()
        self.display.message(f"hand-off model written to {path}")
        return path

    def _best_path(self, stage: Stage) -> Path:
        return self.s.checkpoint_dir / self.s.best_filenames.get(stage.best_filename_field, f"best_{stage.name}.pt")

    @torch.no_grad()
    def validation_rouge(self, stage: Stage, data: StageData) -> dict[str, float]:
        """Token stages with eval_rouge_samples: the text scorer's values (ROUGE F1 x 100) of greedy outputs for
        the first eval_rouge_samples validation examples. Every rank scores the same examples, so all
        ranks take the same best-model and early-stopping decisions."""
        n = min(self.s.eval_rouge_samples, len(data.validation))
        if stage.objective != "tokens" or n == 0:
            return {}
        outputs, references = [], []
        for start in range(0, n, stage.batch_size):
            rows = [data.validation[i] for i in range(start, min(n, start + stage.batch_size))]
            batch = _to_device(data.collate(rows), self.accelerator.device)
            outputs += self._greedy(stage, batch, self.s.eval_max_new_tokens)
            references += self._target_texts(batch)
        return {k: float(v) for k, v in self.text_scorer(outputs, references).items()}

    def _greedy(self, stage: Stage, batch: Mapping[str, Any], max_new_tokens: int) -> list[str]:
        objective = StageObjective(self.model, stage, self.s.max_seq_len, self.s.max_target_len).eval()
        with self.accelerator.autocast():
            latents, mask = objective.decoder_input(batch)
            rows = self.model.decoder.generate(self.model.prefix(latents, mask),
                                               SamplingSpec(max_new_tokens=max_new_tokens, do_sample=False))
        return self.model.decoder.decode(rows)

    def _target_texts(self, batch: Mapping[str, Any]) -> list[str]:
        ids, mask = batch["target_ids"], batch["target_attention_mask"].bool()
        return self.model.decoder.decode([row[keep].tolist() for row, keep in zip(ids, mask)])

    @torch.no_grad()
    def _show_sample(self, stage: Stage, data: StageData) -> None:
        if not self.accelerator.is_main_process and not self.sharded:  # sharded: every rank takes part, rank 0 shows
            return
        batch = _to_device(data.collate([data.validation[0]]), self.accelerator.device)
        output = self._greedy(stage, batch, self.s.sample_max_tokens)[0]
        self.display.sample(output, target=self._target_texts(batch)[0])

    # ------------------------------------------------------------------ checkpoints, logging, stopping

    def _scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        warmup = warmup_steps_for(total_steps, self.s.warmup_steps, self.s.warmup_ratio)
        return build_scheduler(optimizer, warmup_steps=warmup, total_steps=total_steps,
                               kind=self.s.lr_scheduler_type, min_lr_ratio=self.s.min_lr_ratio)

    def _note_trainable(self, stage: Stage, st: LoopState, params: list[nn.Parameter]) -> None:
        count = sum(p.numel() for p in params)
        st.trainable[stage.name] = count
        self.display.message(f"{stage.name}: {count:,} trainable parameters ({', '.join(sorted(stage.trains))})")

    def _record(self, m: StepMetrics) -> None:
        """One metrics line: metrics.jsonl, the display, and the experiment trackers (rank 0; no-op without)."""
        self.metrics.write(m)
        self.display.update(m)
        key = (m.split, m.stage, m.global_step)
        if key in self._logged_before:  # the killed run this one resumes logged it already
            self._logged_before.discard(key)
            return
        self.accelerator.log(tracker_values(m), step=m.global_step)

    def _train_state(self, stage: Stage, st: LoopState, optimizer, scheduler) -> TrainState:
        optimizer_state = sharding.gathered(optimizer.state_dict()) if self.sharded else optimizer.state_dict()
        return TrainState(stage=stage.name, model=self._trainable_state(), optimizer=optimizer_state,
                          scheduler=scheduler.state_dict(), loop=st.to_json(), rng=capture_rng_state(),
                          config=self.config)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """The model's trained tensors, whole (gathered from the ranks' shards when sharded: every rank calls)."""
        state = self.model.trainable_state_dict()
        return sharding.gathered(state) if self.sharded else state

    def _load_trainable(self, state: Mapping[str, torch.Tensor]) -> None:
        if self.sharded:
            sharding.load_sharded(self.model, state)
        else:
            self.model.load_trainable_state_dict(state)

    def _save(self, stage: Stage, st: LoopState, optimizer, scheduler) -> None:
        st.metrics_lines = self.metrics.lines
        st.log_window = self._window.to_json()  # the next line averages steps before and after a resume
        self.checkpointer.save(st.global_step, self._train_state(stage, st, optimizer, scheduler))
        self._last_saved_step = st.global_step

    def _show_checkpoint_state(self) -> None:
        status = self.checkpointer.status()
        self.display.checkpoint_state(status.writing_step, status.last_committed_step, status.error)

    def _log(self, stage: Stage, st: LoopState, window: "_LogWindow", scheduler, grad_norm: float) -> None:
        seconds = max(time.perf_counter() - window.started, 1e-9)
        m = StepMetrics(stage=stage.name, epoch=st.epoch, step=st.step, losses=window.mean(), lr=scheduler.get_last_lr()[0],
                        grad_norm=grad_norm, samples_per_s=window.samples / seconds,
                        tokens_per_s=window.tokens / seconds if window.tokens else None,
                        memory_gb=peak_memory_gb(self.accelerator.device), global_step=st.global_step)
        self._record(m)

    def _should_stop(self, st: LoopState) -> bool:
        stop = self._stop_requested or (self.s.stop_after_steps is not None and st.global_step >= self.s.stop_after_steps)
        if self.accelerator.num_processes > 1:  # every rank stops at the same step
            flag = torch.tensor(float(stop), device=self.accelerator.device)
            stop = bool(self.accelerator.reduce(flag, "sum") > 0)
        return stop

    @contextmanager
    def _stop_on_ctrl_c(self) -> Iterator[None]:
        """First Ctrl-C (or SIGTERM, e.g. a cluster preemption): finish the step, checkpoint, exit cleanly.
        A second one gets the usual behaviour (KeyboardInterrupt / termination)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum, frame):
            self._stop_requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.display.message(f"{name}: saving a checkpoint after this step (again to abort)")
            signal.signal(signum, previous[signum])

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _start_state(self, resume: Optional[LoadedCheckpoint]) -> LoopState:
        plan = [s.name for s in self.stages]
        if resume is None:
            return LoopState(plan=plan)
        st = LoopState.from_json(resume.loop, resume.path / "state.json")
        if st.plan != plan:
            raise UserError(f"checkpoint {resume.path} belongs to a run with stages {st.plan}; this run plans {plan}. "
                            "Use the same pipeline settings, or start fresh with another --checkpoint-dir.")
        restore(resume.path / MODEL_TENSORS, "model", self._load_trainable, resume.model)
        self._continue_the_record(st)
        self.display.message(f"resuming from {resume.path} (stage {resume.stage}, step {st.global_step})")
        return st

    def _continue_the_record(self, st: LoopState) -> None:
        """Make the run's records read as if it had never stopped: metrics.jsonl cut back to the lines it held at
        the checkpoint (the killed run's later lines are logged again, identically), and those steps kept from
        the trackers, which received them already."""
        if st.metrics_lines is None:  # a checkpoint of an older version: the file is kept as it is
            return
        cut = self.metrics.truncate_to(st.metrics_lines)
        self._logged_before = {(r.get("split", "train"), r.get("stage"), r.get("global_step")) for r in cut}
        if cut:
            self.display.message(f"{self.metrics.path}: {len(cut)} line(s) logged after step {st.global_step} by "
                                 "the stopped run removed; they are logged again as the run continues")


class _LogWindow:
    """Sums since the last metrics line."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sums: dict[str, float] = {}
        self.steps = self.samples = self.tokens = 0

    @classmethod
    def resumed(cls, saved: Mapping[str, Any]) -> "_LogWindow":
        """A window holding the sums a checkpoint saved (empty: a fresh one)."""
        window = cls(time.perf_counter())
        window.sums = dict(saved.get("sums", {}))
        window.steps, window.samples, window.tokens = (int(saved.get(k, 0)) for k in ("steps", "samples", "tokens"))
        return window

    def to_json(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "steps": self.steps, "samples": self.samples, "tokens": self.tokens}

    def add(self, losses: Mapping[str, float], samples: int, tokens: int) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        self.samples += samples
        self.tokens += tokens

    def mean(self) -> dict[str, float]:
        return {k: v / max(1, self.steps) for k, v in self.sums.items()}
