"""One training loop for every stage: `Trainer.train()` runs the planned stages, `train_step()` is one update.

    for each stage (src/latentbridge/training/stages.py):
        freeze everything but stage.trains; AdamW + warmup/schedule over the trainable parameters
        for each epoch: a seeded order of the stage's examples (resumable mid-epoch)
            for each window of gradient_accumulation_steps micro-batches: train_step()
            log every log_every steps, validate every eval_steps steps, step checkpoint every save_every steps
        validate after every epoch (when eval_steps is none); validation.py keeps the best weights in the
        stage's best-model file and decides early stopping
        the stage ends by loading its best weights back, so the next stage starts from them
    finally: the hand-off model file (best_model.pt) and summary.json

Beside it: settings.py (what the trainer is given), epoch_batches.py (each epoch's examples, in order),
loop_state.py (what it carries and saves), objective.py (what a stage minimises), validation.py, resume.py,
run_record.py (where a metrics line goes), trained_tensors.py (the trained weights, whole, to and from files),
memory.py (peak memory) and stop_signals.py (Ctrl-C, SIGTERM).
The trainer never reads the Config: src/latentbridge/recipe.py builds `TrainSettings` and the stages, and
`--mode train` (src/latentbridge/modes/train.py) the model, the data and the progress display.
Accelerate provides the device, autocast, backward, gradient clipping and DDP wrapping; accumulation
is explicit (`no_sync` on all but the last micro-batch) so a window is never split across a checkpoint.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from accelerate import Accelerator
from torch import nn

from latentbridge.data.batch import INDEX, TARGET_ATTENTION_MASK
from latentbridge.models.bridge import LatentBridge, set_trainable
from latentbridge.training import sharding
from latentbridge.training.checkpoint import (AsyncCheckpointer, ConfigFingerprint, LoadedCheckpoint, TrainState,
                                              capture_rng_state, load_model_file, restore, should_save)
from latentbridge.training.epoch_batches import Window, batches_per_epoch, windows_left
from latentbridge.training.loop_state import LogWindow, LoopState, TrainResult
from latentbridge.training.memory import peak_memory_gb, reset_peak_memory
from latentbridge.training.metrics import MetricsWriter, StepMetrics
from latentbridge.training.objective import StageObjective, frozen_subtrees, set_train_modes, to_device
from latentbridge.training.optim import param_groups
from latentbridge.training.display import NullDisplay, ProgressDisplay
from latentbridge.training.resume import continue_the_record, restore_stage, resumed_state
from latentbridge.training.run_record import RunRecord
from latentbridge.training.schedule import build_scheduler, optimizer_steps, warmup_steps_for
from latentbridge.training.settings import StageData, TrainSettings
from latentbridge.training.stages import Stage
from latentbridge.training.stop_signals import StopSignals
from latentbridge.training.trained_tensors import TrainedTensors
from latentbridge.training.validation import TextScorer, Validator, check_text_scorer


@dataclass
class StageRun:
    """What one stage's training holds while it runs."""

    stage: Stage
    data: StageData
    params: list[nn.Parameter]  # the parameters that train
    optimizer: torch.optim.Optimizer
    scheduler: Any
    objective: nn.Module  # the StageObjective, DDP-wrapped unless the layers are sharded
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.stage.epochs


class EpochEnd(Enum):
    DONE = "done"                    # the epoch's examples are all trained
    EARLY_STOPPED = "early_stopped"  # a validation ended the stage (validation.py)
    INTERRUPTED = "interrupted"      # a stop was asked for (signal, stop_after_steps): checkpointed


class Trainer:
    def __init__(self, model: LatentBridge, stages: tuple[Stage, ...], data_for: Callable[[Stage], StageData],
                 settings: TrainSettings, *, fingerprint: ConfigFingerprint, config: Mapping[str, Any],
                 accelerator: Any = None, display: Optional[ProgressDisplay] = None,
                 text_scorer: Optional[TextScorer] = None) -> None:
        """`text_scorer` scores the greedy outputs of token stages against their references (the ROUGE of
        evaluation/rouge.py, passed in by --mode train: training sits below evaluation in the layers)."""
        check_text_scorer(settings, text_scorer)  # before any file is opened
        self.model, self.stages, self.data_for, self.settings = model, stages, data_for, settings
        self.accelerator = accelerator or Accelerator(cpu=next(model.parameters()).device.type == "cpu")
        self.config = dict(config)
        self.display = display or NullDisplay()
        wants_sharding = settings.shard_layers
        self.sharded = sharding.wants_sharding(self.accelerator) if wants_sharding is None else wants_sharding
        is_main = self.accelerator.is_main_process
        self.metrics = MetricsWriter(settings.run_dir, is_main=is_main)
        self.record = RunRecord(self.metrics, self.display, self.accelerator)
        self.checkpointer = AsyncCheckpointer(settings.checkpoint_dir, fingerprint=fingerprint,
                                              keep_last=settings.keep_last_checkpoints,
                                              async_save=settings.async_checkpointing, is_main=is_main,
                                              background_copy=True)
        self.trained = TrainedTensors(model, self.checkpointer, config=self.config, sharded=self.sharded)
        # The validator gets the parts it uses, not the trainer: no reference cycle keeps a finished trainer's
        # model (and GPU memory) alive until the garbage collector runs.
        self.validator = Validator(model, settings, self.accelerator, display=self.display, record=self.record.write,
                                   save_model=self.trained.save, sharded=self.sharded, text_scorer=text_scorer)
        self.stop_signals = StopSignals(self.display.message)
        self._frozen: list[nn.Module] = []  # the stage's frozen subtrees, kept in eval mode
        self._last_saved_step: Optional[int] = None
        self._window = LogWindow(time.perf_counter())
        if self.sharded and not sharding.is_sharded(model):
            sharding.shard_layers(model, self.accelerator.device)

    # ------------------------------------------------------------------ the pipeline

    def train(self, resume: Optional[LoadedCheckpoint] = None) -> TrainResult:
        """Run every stage from the start, or from `resume` (exactly where it stopped)."""
        state = self._start_state(resume)
        interrupted = False
        with self.stop_signals.caught():
            try:
                while state.stage_index < len(self.stages) and not interrupted:
                    interrupted = self._run_stage(self.stages[state.stage_index], state, resume)
                    resume = None
                handoff = None if interrupted else self._write_handoff(state)
            finally:
                self.checkpointer.close()
                self._show_checkpoint_state()
                self.metrics.write_summary(self._summary(state, interrupted))
                self.metrics.close()
        return TrainResult(state, interrupted, handoff)

    def _run_stage(self, stage: Stage, state: LoopState, resume: Optional[LoadedCheckpoint]) -> bool:
        """Train one stage to its end (True when stopped early: Ctrl-C or stop_after_steps)."""
        run = self._start_stage(stage, state, resume)
        while state.epoch < stage.epochs:
            end = self._train_epoch(run, state)
            if end is EpochEnd.INTERRUPTED:
                return True
            if end is EpochEnd.EARLY_STOPPED or self._end_epoch(run, state):
                break
        self._end_stage(stage, state)
        del run
        if self.accelerator.num_processes > 1:  # drop the stage's DDP wrapper (its hooks) before the next stage wraps
            self.accelerator.free_memory()  # again; one process has no wrapper, and its gc.collect() took 0.5 s a stage
        return False

    def _start_stage(self, stage: Stage, state: LoopState, resume: Optional[LoadedCheckpoint]) -> StageRun:
        """Freeze all but what the stage trains, build its optimizer, schedule and objective (restored from
        `resume`), put the modules in their train modes."""
        set_trainable(self.model, stage.trains)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._note_trainable(stage, state, params)
        self._frozen = frozen_subtrees(self.model)
        data = self.data_for(stage)
        batches = batches_per_epoch(len(data.train), stage.batch_size, self.accelerator.num_processes)
        steps_per_epoch = optimizer_steps(batches, 1, self.settings.gradient_accumulation_steps)
        optimizer = torch.optim.AdamW(param_groups(self.model, self.settings.rates), lr=self.settings.learning_rate,
                                      weight_decay=self.settings.weight_decay)
        scheduler = self._scheduler(optimizer, steps_per_epoch * stage.epochs)
        objective = StageObjective(self.model, stage, self.settings.max_seq_len, self.settings.max_target_len)
        if not self.sharded:  # DDP; sharded layers reduce their own gradients, train_step averages the rest
            objective = self.accelerator.prepare(objective)
        run = StageRun(stage, data, params, optimizer, scheduler, objective, steps_per_epoch)
        if resume is not None:
            restore_stage(resume, optimizer, scheduler, sharded=self.sharded)
        self.display.start_stage(stage.name, state.stage_index + 1, len(self.stages), epochs=stage.epochs,
                                 steps_per_epoch=steps_per_epoch, start_step=state.step)
        self.checkpointer.prepare(self._train_state(run, state))  # allocate copy buffers now
        set_train_modes(objective, self._frozen)
        reset_peak_memory(self.accelerator.device)
        self._window = LogWindow.resumed(state.log_window)
        state.log_window = {}
        return run

    def _train_epoch(self, run: StageRun, state: LoopState) -> EpochEnd:
        """Train the rest of this epoch, window by window: step, log, validate, checkpoint, stop when asked."""
        for micro_batches in windows_left(run.data, run.stage.batch_size, self.settings, self.accelerator,
                                          stage_index=state.stage_index, epoch=state.epoch,
                                          batch_in_epoch=state.batch_in_epoch):
            self._step(run, state, micro_batches)
            if self.validator.is_due(state.step, run.total_steps):
                if self._validate(run, state, budget_left=state.step < run.total_steps):
                    return EpochEnd.EARLY_STOPPED
            if should_save(state.global_step, self.settings.save_every):
                self._save(run, state)
            if self._should_stop(state):
                if self._last_saved_step != state.global_step:
                    self._save(run, state)
                self.checkpointer.wait()
                self._show_checkpoint_state()  # the caller says that it stopped (TrainResult.interrupted)
                return EpochEnd.INTERRUPTED
            self._show_checkpoint_state()
        return EpochEnd.DONE

    def _step(self, run: StageRun, state: LoopState, micro_batches: Window) -> None:
        """One optimizer update, counted, and logged every log_every steps and at the stage's last."""
        losses, grad_norm, samples, tokens = self.train_step(run.objective, run.params, run.optimizer, run.scheduler,
                                                             micro_batches)
        state.batch_in_epoch += len(micro_batches)
        state.step += 1
        state.global_step += 1
        self._window.add(losses, samples, tokens)
        if state.step % self.settings.log_every == 0 or state.step == run.total_steps:
            self._log(run, state, grad_norm)
            self._window = LogWindow(time.perf_counter())

    def _validate(self, run: StageRun, state: LoopState, *, budget_left: bool) -> bool:
        """Validate (validation.py); True when early stopping ends the stage."""
        return self.validator.run(run.stage, state, run.data, training=run.objective, frozen=self._frozen,
                                  budget_left=budget_left)

    def _end_epoch(self, run: StageRun, state: LoopState) -> bool:
        """Validate (when eval_steps is none) and move to the next epoch. True when early stopping ends the stage."""
        stop = self.settings.eval_steps is None and self._validate(
            run, state, budget_left=state.epoch + 1 < run.stage.epochs)
        state.start_next_epoch()
        return stop

    def _end_stage(self, stage: Stage, state: LoopState) -> None:
        """Load the stage's best weights back (the next stage and the hand-off start from them), reset counters."""
        self.checkpointer.wait()
        self.accelerator.wait_for_everyone()  # rank 0 has committed the best file before anyone reads it
        best = self.validator.best_path(stage)
        if best.exists():
            restore(best, "model", self.trained.load, load_model_file(best).model)
        state.start_next_stage()

    # ------------------------------------------------------------------ one optimizer update

    def train_step(self, objective: nn.Module, params: list[nn.Parameter], optimizer: torch.optim.Optimizer,
                   scheduler: Any, micro_batches: list[dict[str, Any]]) -> tuple[dict[str, float], float, int, int]:
        """Forward + backward over one accumulation window, clip, step (the modules' train/eval modes are set by
        `set_train_modes`). Returns (mean losses, grad norm, samples, tokens)."""
        acc = self.accelerator
        sums: dict[str, torch.Tensor] = {}
        samples = tokens = 0
        for i, batch in enumerate(micro_batches):
            samples += len(batch[INDEX])
            if TARGET_ATTENTION_MASK in batch:  # counted on the host's copy: no wait for the device
                tokens += int(batch[TARGET_ATTENTION_MASK].sum())
            batch = to_device(batch, acc.device)
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

    def _sync_and_clip(self, params: list[nn.Parameter]) -> torch.Tensor:
        """Average what DDP does not (the replicated parameters of a sharded model), clip to max_grad_norm (0: only
        measure), return the norm."""
        if self.sharded:
            sharding.average_replicated_grads(params)
            return sharding.clip_grad_norm_(params, self.settings.max_grad_norm)
        if self.settings.max_grad_norm > 0:
            return self.accelerator.clip_grad_norm_(params, self.settings.max_grad_norm)
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))

    def _scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        warmup = warmup_steps_for(total_steps, self.settings.warmup_steps, self.settings.warmup_ratio)
        return build_scheduler(optimizer, warmup_steps=warmup, total_steps=total_steps,
                               kind=self.settings.lr_scheduler_type, min_lr_ratio=self.settings.min_lr_ratio)

    # ------------------------------------------------------------------ logging and stopping

    def _note_trainable(self, stage: Stage, state: LoopState, params: list[nn.Parameter]) -> None:
        count = sum(p.numel() for p in params)
        state.trainable[stage.name] = count
        self.display.message(f"{stage.name}: {count:,} trainable parameters ({', '.join(sorted(stage.trains))})")

    def _log(self, run: StageRun, state: LoopState, grad_norm: float) -> None:
        window = self._window
        seconds = max(time.perf_counter() - window.started, 1e-9)
        self.record.write(StepMetrics(stage=run.stage.name, epoch=state.epoch, step=state.step, losses=window.mean(),
                                 lr=run.scheduler.get_last_lr()[0], grad_norm=grad_norm,
                                 samples_per_s=window.samples / seconds,
                                 tokens_per_s=window.tokens / seconds if window.tokens else None,
                                 memory_gb=peak_memory_gb(self.accelerator.device), global_step=state.global_step))

    def _summary(self, state: LoopState, interrupted: bool) -> dict[str, Any]:
        """summary.json."""
        return {"global_step": state.global_step, "interrupted": interrupted, "stages": state.plan,
                "best_validation_loss": state.best, "best_model_metric": self.settings.best_model_metric,
                "best_scores": state.best_scores, "early_stopped": state.early_stopped,
                "trainable_parameters": state.trainable,
                "last_checkpoint": str(self.checkpointer.status().last_committed_path)}

    def _should_stop(self, state: LoopState) -> bool:
        limit = self.settings.stop_after_steps
        stop = self.stop_signals.requested or (limit is not None and state.global_step >= limit)
        if self.accelerator.num_processes > 1:  # every rank stops at the same step
            flag = torch.tensor(float(stop), device=self.accelerator.device)
            stop = bool(self.accelerator.reduce(flag, "sum") > 0)
        return stop

    # ------------------------------------------------------------------ checkpoints

    def _save(self, run: StageRun, state: LoopState) -> None:
        state.metrics_lines = self.metrics.lines
        state.log_window = self._window.to_json()  # the next line averages steps before and after a resume
        self.checkpointer.save(state.global_step, self._train_state(run, state))
        self._last_saved_step = state.global_step

    def _train_state(self, run: StageRun, state: LoopState) -> TrainState:
        optimizer = run.optimizer.state_dict()
        return TrainState(stage=run.stage.name, model=self.trained.state(),
                          optimizer=sharding.gathered(optimizer) if self.sharded else optimizer,
                          scheduler=run.scheduler.state_dict(), loop=state.to_json(), rng=capture_rng_state(),
                          config=self.config)

    def _write_handoff(self, state: LoopState) -> Optional[Path]:
        if not self.stages:
            return None
        path = self.settings.checkpoint_dir / self.settings.handoff_filename
        self.trained.save(path, state.global_step, self.stages[-1].name)
        self.checkpointer.wait()
        self.display.message(f"hand-off model written to {path}")
        return path

    def _show_checkpoint_state(self) -> None:
        status = self.checkpointer.status()
        self.display.checkpoint_state(status.writing_step, status.last_committed_step, status.error)

    def _start_state(self, resume: Optional[LoadedCheckpoint]) -> LoopState:
        if resume is None:
            return LoopState(plan=[s.name for s in self.stages])
        state = resumed_state(resume, [s.name for s in self.stages], self.trained.load)
        self.record.logged_before = continue_the_record(state, self.metrics, self.display)
        self.display.message(f"resuming from {resume.path} (stage {resume.stage}, step {state.global_step})")
        return state
