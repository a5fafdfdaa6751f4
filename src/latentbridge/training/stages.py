"""The training pipeline as data: `plan_stages(...)` returns the validated list of stages one loop runs.

No torch, and no Config object: src/latentbridge/recipe.py passes explicit values, which the Config has
already validated (the stage, mode and phase names are config.py's lists).
docs/pipeline.md explains every stage, phase and mode.

Decoder input of a token stage: `uses_middle` -> middle(input latents); otherwise the target
text's own latents (reconstruction: the adapter learns to read latents back into their text).
A stage that trains the encoder or compressor encodes text live, and so do the latent (middle) stages
when `latent_stages_use_cache` is off; the others read the cached latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from latentbridge.config import STAGES
from latentbridge.errors import UserError
from latentbridge.models.specs import MODEL_PARTS

DATA_COLLECTIONS = ("pretrain", "dialogue")  # pretraining text (wikitext/arxiv/english) | dialogue -> summary
OBJECTIVES = ("latent", "tokens")  # MSE + InfoNCE (+ stop) on latents | token cross-entropy through the decoder
# Budget keys: the four pipeline stages (config.STAGES), plus the single stage of end_to_end mode and of phase2.
BUDGET_KEYS = STAGES + ("end_to_end", "train_encoder")
PRETRAIN_BEST = "pretrain_best_model_filename"
FINETUNE_BEST = "finetune_best_model_filename"


@dataclass(frozen=True)
class StageBudget:
    """How much one stage trains: epochs, batch size, total example cap, per-dataset caps."""

    epochs: int
    batch_size: int
    max_samples: int | None = None
    dataset_caps: tuple[tuple[str, int | None], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: what trains, on which data, against which objective, for how long."""

    name: str
    trains: frozenset[str]
    collection: str  # which examples it trains on: one of DATA_COLLECTIONS (the cache's split names)
    objective: str
    uses_middle: bool
    best_filename_field: str  # the Config field naming the file its best weights go to
    epochs: int
    batch_size: int
    max_samples: int | None = None
    dataset_caps: tuple[tuple[str, int | None], ...] = ()
    description: str = ""
    encodes_live: bool = False  # encode the text through the (frozen) encoder even though it does not train

    def __post_init__(self) -> None:
        problems = []
        if not self.trains or not self.trains <= set(MODEL_PARTS):
            problems.append(f"trains {sorted(self.trains)} must be a non-empty subset of {MODEL_PARTS}")
        if self.collection not in DATA_COLLECTIONS:
            problems.append(f"collection {self.collection!r} must be one of {DATA_COLLECTIONS}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective {self.objective!r} must be one of {OBJECTIVES}")
        if self.objective == "latent" and (self.trains != {"middle"} or not self.uses_middle):
            problems.append("a latent objective trains exactly the middle model")
        if self.objective == "tokens" and "adapter" not in self.trains:
            problems.append("a token objective trains the adapter")
        if "middle" in self.trains and not self.uses_middle:
            problems.append("a stage that trains the middle must use it")
        if self.best_filename_field not in (PRETRAIN_BEST, FINETUNE_BEST):
            problems.append(f"best_filename_field {self.best_filename_field!r} is not a best-model field")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be >= 1")
        if self.max_samples is not None and self.max_samples < 1:
            problems.append(f"max_samples ({self.max_samples}) must be >= 1 or None")
        if problems:
            raise ValueError(f"invalid stage {self.name!r}: " + "; ".join(problems))

    @property
    def uses_cache(self) -> bool:
        """Latents come from the preprocessed cache unless the stage encodes live or trains the encoder/compressor."""
        return not (self.encodes_live or self.trains & {"encoder", "compressor"})


def _stage(name: str, budget: StageBudget, *, trains: set[str], collection: str, objective: str, uses_middle: bool,
           best: str, description: str, encodes_live: bool = False) -> Stage | None:
    """The stage, or None when its budget has 0 epochs (left out of the plan)."""
    if budget.epochs == 0:
        return None
    return Stage(name=name, trains=frozenset(trains), collection=collection, objective=objective,
                 uses_middle=uses_middle, best_filename_field=best, epochs=budget.epochs, batch_size=budget.batch_size,
                 max_samples=budget.max_samples, dataset_caps=tuple(budget.dataset_caps), description=description,
                 encodes_live=encodes_live)


def plan_stages(*, pipeline_mode: str, training_phase: str, run_pretraining: bool, run_finetuning: bool,
                adapter_pretrain_use_middle: bool, freeze_encoder_compression: bool, train_decoder_layers: bool,
                budgets: Mapping[str, StageBudget], latent_stages_use_cache: bool = True) -> tuple[Stage, ...]:
    """The stages to run, in order. Stages with 0 epochs are left out; an empty plan is a UserError.

    `training_phase` other than normal selects a diagnostic plan and takes precedence over
    `pipeline_mode`. `run_pretraining`/`run_finetuning` pick the pretrain (1-2) and finetune
    (3-4) halves of two_stage_scientific and of phase1/phase3. `latent_stages_use_cache` off: the
    middle stages encode their input and target text live instead of reading cached latents.
    """
    adapter = {"adapter", "decoder"} if train_decoder_layers else {"adapter"}

    def budget(key: str) -> StageBudget:
        if key not in budgets:
            raise ValueError(f"no budget for stage {key!r}; expected keys among {BUDGET_KEYS}")
        return budgets[key]

    def pretrain_middle() -> Stage | None:
        return _stage("pretrain_middle", budget("pretrain_middle"), trains={"middle"}, collection="pretrain",
                      objective="latent", uses_middle=True, best=PRETRAIN_BEST, encodes_live=not latent_stages_use_cache,
                      description="middle: latents(segment A) -> latents(segment B) of pretraining text")

    def pretrain_adapter(use_middle: bool) -> Stage | None:
        source = "middle(latents(segment A))" if use_middle else "latents(text)"
        return _stage("pretrain_adapter", budget("pretrain_adapter"), trains=adapter, collection="pretrain",
                      objective="tokens", uses_middle=use_middle, best=PRETRAIN_BEST, description=f"adapter: {source} -> text")

    def finetune_middle() -> Stage | None:
        return _stage("finetune_middle", budget("finetune_middle"), trains={"middle"}, collection="dialogue",
                      objective="latent", uses_middle=True, best=FINETUNE_BEST, encodes_live=not latent_stages_use_cache,
                      description="middle: latents(dialogue) -> latents(summary)")

    def finetune_adapter(use_middle: bool, extra: set[str] = frozenset()) -> Stage | None:
        source = "middle(latents(dialogue))" if use_middle else "latents(summary)"
        return _stage("finetune_adapter", budget("finetune_adapter"), trains=adapter | extra, collection="dialogue",
                      objective="tokens", uses_middle=use_middle, best=FINETUNE_BEST,
                      description=f"adapter{' + compressor' if extra else ''}: {source} -> summary")

    plan: list[Stage | None] = []
    if training_phase == "phase1":  # decoder alignment only: the adapter learns to read latents, middle bypassed
        plan += [pretrain_adapter(False)] if run_pretraining else []
        plan += [finetune_adapter(False)] if run_finetuning else []
    elif training_phase == "phase2":  # encoder training: encoder top layers + compressor + adapter, reconstruction
        plan.append(_stage("train_encoder", budget("train_encoder"), trains={"encoder", "compressor"} | adapter,
                           collection="dialogue", objective="tokens", uses_middle=False, best=FINETUNE_BEST,
                           description="encoder + compressor + adapter: text -> latents -> same text"))
    elif training_phase == "phase3":  # middle model only
        plan += [pretrain_middle()] if run_pretraining else []
        plan += [finetune_middle()] if run_finetuning else []
    elif pipeline_mode == "end_to_end":
        plan.append(_stage("end_to_end", budget("end_to_end"), trains={"compressor", "middle"} | adapter,
                           collection="dialogue", objective="tokens", uses_middle=True, best=FINETUNE_BEST,
                           description="compressor + middle + adapter: dialogue -> summary, token loss only"))
    else:  # two_stage_scientific
        if run_pretraining:
            plan += [pretrain_middle(), pretrain_adapter(adapter_pretrain_use_middle)]
        if run_finetuning:
            plan += [finetune_middle(),
                     finetune_adapter(True, set() if freeze_encoder_compression else {"compressor"})]
    return _validated(plan, pipeline_mode, training_phase)


def _validated(plan: list[Stage | None], pipeline_mode: str, training_phase: str) -> tuple[Stage, ...]:
    kept = tuple(s for s in plan if s is not None)
    names = [s.name for s in kept]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate stages in plan: {names}")
    if not kept:
        why = ("every planned stage has 0 epochs" if plan else
               "run_pretraining and run_finetuning are both off")
        raise UserError(
            f"Nothing to train: {why} (pipeline_mode {pipeline_mode}, training_phase {training_phase}). "
            "Turn on --run-pretraining or --run-finetuning, or give the stages epochs "
            "(--pretrain-middle-epochs ... --finetune-adapter-epochs, --num-epochs)."
        )
    return kept
