"""Validation during training, in one place: `Validator.run()` measures a stage's validation losses (and the
ROUGE of greedy outputs on token stages), keeps the best weights so far, shows a sample, puts the trained
modules back in train mode, and decides whether early stopping ends the stage.

    selection score (lower is better): the validation loss, or -rougeL with best_model_metric rougeL on a
        token stage that measures ROUGE; without validation data, the latest weights are the best
    a better score -> the stage's best-model file; otherwise one more validation without improvement
    early_stopping_patience of them in a row, with budget left -> the stage ends (summary.json, early_stopped)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from latentbridge.data.batch import INDEX, TARGET_ATTENTION_MASK, TARGET_IDS
from latentbridge.models.bridge import LatentBridge
from latentbridge.models.specs import SamplingSpec
from latentbridge.training.loop_state import LoopState
from latentbridge.training.metrics import StepMetrics
from latentbridge.training.objective import StageObjective, set_train_modes, to_device
from latentbridge.training.display import ProgressDisplay
from latentbridge.training.settings import StageData, TrainSettings, stage_loader
from latentbridge.training.stages import Stage

TextScorer = Callable[[list[str], list[str]], Mapping[str, float]]  # (outputs, references) -> {"rougeL": ...}
SaveModel = Callable[[Path, int, str], None]  # (file, global step, stage name): the trained tensors to a model file


def check_text_scorer(settings: TrainSettings, text_scorer: Optional[TextScorer]) -> None:
    """ROUGE during training (eval_rouge_samples) needs a text scorer: a ValueError otherwise."""
    if settings.eval_rouge_samples and text_scorer is None:
        raise ValueError("eval_rouge_samples needs a text_scorer")


class Validator:
    """Validates a stage, owns its best weights and the early-stop decision. Every rank validates: the losses
    are reduced over the ranks and the ROUGE examples are the same on each, so all ranks decide alike."""

    def __init__(self, model: LatentBridge, settings: TrainSettings, accelerator: Any, *, display: ProgressDisplay,
                 record: Callable[[StepMetrics], None], save_model: SaveModel, sharded: bool,
                 text_scorer: Optional[TextScorer] = None) -> None:
        """`record` writes a metrics line; `text_scorer` scores greedy outputs against their references (the ROUGE
        of evaluation/rouge.py, passed in by --mode train: training sits below evaluation in the layers)."""
        check_text_scorer(settings, text_scorer)
        self.model, self.settings, self.accelerator = model, settings, accelerator
        self.display, self.record, self.save_model = display, record, save_model
        self.sharded, self.text_scorer = sharded, text_scorer

    def is_due(self, step: int, total_steps: int) -> bool:
        """With eval_steps: every eval_steps-th step of the stage, and its last one (None: the loop validates
        after each epoch instead)."""
        every = self.settings.eval_steps
        return every is not None and (step % every == 0 or step == total_steps)

    def run(self, stage: Stage, state: LoopState, data: StageData, *, training: nn.Module,
            frozen: Sequence[nn.Module], budget_left: bool) -> bool:
        """Validate, keep the best weights so far, show a sample, then put `training` (the stage's objective) and
        `frozen` back in their train modes. True when early stopping ends the stage here: patience validations
        in a row without improvement while the stage still had steps (`budget_left`) to train."""
        try:
            losses = self.losses(stage, data)
            rouge = self.rouge(stage, data) if losses is not None else {}
            if losses is not None:
                self.record(StepMetrics(stage.name, state.epoch, state.step, losses, global_step=state.global_step,
                                        split="validation", extra={"rouge": rouge} if rouge else {}))
            self._update_best(stage, state, losses, rouge)
            if stage.objective == "tokens" and data.validation is not None and len(data.validation):
                self._show_sample(stage, data)
        finally:
            set_train_modes(training, frozen)
        return budget_left and self._stops_early(stage, state)

    def best_path(self, stage: Stage) -> Path:
        """The stage's best-model file: the file its best_filename_field names, or best_<stage>.pt."""
        names = self.settings.best_filenames
        return self.settings.checkpoint_dir / names.get(stage.best_filename_field, f"best_{stage.name}.pt")

    def metric(self, stage: Stage) -> str:
        """The metric that picks this stage's best weights: rougeL only where the stage measures ROUGE."""
        rouge = stage.objective == "tokens" and self.settings.eval_rouge_samples > 0
        return "rougeL" if self.settings.best_model_metric == "rougeL" and rouge else "loss"

    # ------------------------------------------------------------------ measuring

    @torch.no_grad()
    def losses(self, stage: Stage, data: StageData) -> Optional[dict[str, float]]:
        """Mean validation losses of the stage's objective (all ranks reduced), or None without validation data."""
        if data.validation is None or len(data.validation) == 0:
            return None
        acc = self.accelerator
        objective = self._objective(stage).eval()
        indices = list(range(len(data.validation)))[acc.process_index::acc.num_processes]
        if self.sharded:  # each forward gathers the sharded layers from every rank: all ranks run as many
            indices = indices[: len(data.validation) // acc.num_processes]
        sums: dict[str, torch.Tensor] = {}
        rows_seen = 0
        for batch in stage_loader(data.validation, indices, stage.batch_size, data.collate, self.settings, acc.device):
            batch = to_device(batch, acc.device)
            with acc.autocast():
                out = objective(batch)
            rows = len(batch[INDEX])
            for k, v in out.items():
                sums[k] = sums.get(k, 0) + v.detach().float() * rows
            rows_seen += rows
        keys = sorted(sums)
        totals = acc.reduce(torch.stack([sums[k] for k in keys] + [torch.tensor(float(rows_seen), device=acc.device)]),
                            "sum")
        return {("total" if k == "loss" else k): float(totals[i] / totals[-1].clamp_min(1)) for i, k in enumerate(keys)}

    @torch.no_grad()
    def rouge(self, stage: Stage, data: StageData) -> dict[str, float]:
        """Token stages with eval_rouge_samples: the text scorer's values (ROUGE F1 x 100) of greedy outputs for
        the first eval_rouge_samples validation examples."""
        n = min(self.settings.eval_rouge_samples, len(data.validation))
        if stage.objective != "tokens" or n == 0:
            return {}
        outputs, references = [], []
        for start in range(0, n, stage.batch_size):
            rows = [data.validation[i] for i in range(start, min(n, start + stage.batch_size))]
            batch = to_device(data.collate(rows), self.accelerator.device)
            outputs += self._greedy(stage, batch, self.settings.eval_max_new_tokens)
            references += self._target_texts(batch)
        return {k: float(v) for k, v in self.text_scorer(outputs, references).items()}

    # ------------------------------------------------------------------ the best weights and early stopping

    def _update_best(self, stage: Stage, state: LoopState, losses: Optional[Mapping[str, float]],
                     rouge: Mapping[str, float]) -> None:
        """Keep the weights when their score beats the stage's best so far; else count one more validation
        without improvement."""
        score = self._selection_score(stage, state, losses, rouge)
        if score < state.best_val:  # a NaN score is no improvement
            self._keep_best(stage, state, score, losses, rouge)
        else:
            state.evals_since_best += 1

    def _keep_best(self, stage: Stage, state: LoopState, score: float, losses: Optional[Mapping[str, float]],
                   rouge: Mapping[str, float]) -> None:
        state.best_val, state.evals_since_best = score, 0
        if losses is not None:
            state.best[stage.name] = losses["total"]
            state.best_scores[stage.name] = rouge["rougeL"] if self.metric(stage) == "rougeL" else losses["total"]
        path = self.best_path(stage)
        self.save_model(path, state.global_step, stage.name)
        self.display.message(f"{stage.name} epoch {state.epoch + 1} step {state.step}: best so far, saving {path.name}")

    def _selection_score(self, stage: Stage, state: LoopState, losses: Optional[Mapping[str, float]],
                         rouge: Mapping[str, float]) -> float:
        """Lower is better. Without validation data the latest weights are the best."""
        if losses is None:
            return -float(state.global_step)
        return -rouge["rougeL"] if self.metric(stage) == "rougeL" else losses["total"]

    def _stops_early(self, stage: Stage, state: LoopState) -> bool:
        """True (recorded in the loop state and said) when early_stopping_patience validations in a row brought
        no improvement."""
        patience = self.settings.early_stopping_patience
        if patience is None or state.evals_since_best < patience:
            return False
        state.early_stopped.append(stage.name)
        self.display.message(f"{stage.name}: early stopping at step {state.step}, {patience} validations without a "
                             f"better {self.metric(stage)} (best {state.best_scores.get(stage.name, float('nan')):.4g})")
        return True

    # ------------------------------------------------------------------ greedy outputs

    def _objective(self, stage: Stage) -> StageObjective:
        return StageObjective(self.model, stage, self.settings.max_seq_len, self.settings.max_target_len)

    def _greedy(self, stage: Stage, batch: Mapping[str, Any], max_new_tokens: int) -> list[str]:
        objective = self._objective(stage).eval()
        with self.accelerator.autocast():
            latents, mask = objective.decoder_input(batch)
            rows = self.model.decoder.generate(self.model.prefix(latents, mask),
                                               SamplingSpec(max_new_tokens=max_new_tokens, do_sample=False))
        return self.model.decoder.decode(rows)

    def _target_texts(self, batch: Mapping[str, Any]) -> list[str]:
        ids, mask = batch[TARGET_IDS], batch[TARGET_ATTENTION_MASK].bool()
        return self.model.decoder.decode([row[keep].tolist() for row, keep in zip(ids, mask)])

    @torch.no_grad()
    def _show_sample(self, stage: Stage, data: StageData) -> None:
        if not self.accelerator.is_main_process and not self.sharded:  # sharded: every rank takes part, rank 0 shows
            return
        batch = to_device(data.collate([data.validation[0]]), self.accelerator.device)
        output = self._greedy(stage, batch, self.settings.sample_max_tokens)[0]
        self.display.sample(output, target=self._target_texts(batch)[0])
