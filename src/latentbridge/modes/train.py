"""`--mode train`: the staged pipeline. The one place that turns a Config into the trainer's inputs.

    run(config, options) -> exit code
        plan the stages -> cache (built when missing) -> model -> resume? -> Trainer.train()

Exit codes: 0 done, 130 stopped by Ctrl-C (a checkpoint was saved; `--resume auto` continues).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from latentbridge.config import Config
from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions
from latentbridge.training.checkpoint import (ARCHITECTURE_FIELDS, ConfigFingerprint, LoadedCheckpoint, config_fingerprint, find_latest,
                                     load_checkpoint, load_model_file)
from latentbridge.training.stages import BUDGET_KEYS, PIPELINE_STAGES, Stage, StageBudget, plan_stages

BEST_FIELDS = ("pretrain_best_model_filename", "finetune_best_model_filename")


def checkpoint_fingerprint(c: Config) -> ConfigFingerprint:
    """What saved weights must match: checkpoint.ARCHITECTURE_FIELDS of the config, and the content of both
    backbone folders, since a model file holds only the trainable weights and reads the frozen backbones
    from their folders (a rebuilt or swapped backbone would silently change a trained model)."""
    from latentbridge.data.cache import hash_path
    from latentbridge.modes.preprocess import model_dir

    backbones = {f"{field}_files": hash_path(folder) if (folder := model_dir(getattr(c, field))) else None
                 for field in ("modernbert_model", "gpt2_model")}
    return config_fingerprint({**c.to_dict(), **backbones}, (*ARCHITECTURE_FIELDS, *backbones))


def stage_budgets(c: Config) -> dict[str, StageBudget]:
    """Each stage's epochs, batch size and caps (end_to_end and phase2's train_encoder use the global ones)."""
    from latentbridge.modes.preprocess import stage_source_caps

    budgets = {}
    for name in BUDGET_KEYS:
        if name in PIPELINE_STAGES:
            total, per = stage_source_caps(c, name) if name.startswith("pretrain") else (c.stage_max_samples(name), {})
            budgets[name] = StageBudget(c.stage_epochs(name), c.stage_batch_size(name), total, tuple(sorted(per.items())))
        else:
            budgets[name] = StageBudget(c.num_epochs, c.batch_size, c.max_train_samples)
    return budgets


def plan(c: Config) -> tuple[Stage, ...]:
    stages = plan_stages(pipeline_mode=c.pipeline_mode, training_phase=c.training_phase,
                         run_pretraining=c.run_pretraining, run_finetuning=c.run_finetuning,
                         adapter_pretrain_use_middle=c.adapter_pretrain_use_middle,
                         freeze_encoder_compression=c.freeze_encoder_compression_in_pipeline,
                         train_decoder_layers=c.decoder_unfrozen_layers > 0, budgets=stage_budgets(c))
    live = [s.name for s in stages if not s.uses_cache]
    if live and not c.cache_store_text:
        raise UserError(f"Stage(s) {', '.join(live)} encode text live (they train the encoder or compressor), "
                        "so the cache must keep the text: add --cache-store-text.")
    return stages


def train_settings(c: Config, *, stop_after_steps: Optional[int] = None) -> Any:
    from latentbridge.training.trainer import TrainSettings

    return TrainSettings(
        learning_rate=c.learning_rate, weight_decay=c.weight_decay, warmup_steps=c.warmup_steps,
        gradient_accumulation_steps=c.gradient_accumulation_steps, max_grad_norm=c.max_grad_norm,
        save_every=c.save_every, log_every=c.log_every, keep_last_checkpoints=c.keep_last_checkpoints,
        async_checkpointing=c.async_checkpointing, checkpoint_dir=Path(c.checkpoint_dir), run_dir=Path(c.output_dir),
        best_filenames={f: getattr(c, f) for f in BEST_FIELDS}, handoff_filename=c.handoff_best_model_filename,
        seed=c.seed, max_seq_len=c.max_seq_len, max_target_len=c.max_target_len, num_workers=c.num_workers,
        prefetch_factor=c.prefetch_factor if c.num_workers > 0 else None,
        sample_max_tokens=min(48, c.max_generation_length), stop_after_steps=stop_after_steps)


def stage_data(c: Config, cache: Any) -> Callable[[Stage], Any]:
    """Stage -> StageData over the cache: the stage's rows of `<data>/train` (caps applied) and `<data>/validation`."""
    from latentbridge.data.loader import CacheDataset, Collate, select_indices
    from latentbridge.modes.preprocess import stage_rows
    from latentbridge.training.trainer import StageData

    def data_for(stage: Stage) -> StageData:
        train = cache.split(stage.data, "train")
        if stage.name in PIPELINE_STAGES:
            rows = stage_rows(c, train, stage.name)
        else:
            rows = select_indices(train, total_cap=stage.max_samples, seed=c.seed)
        validation = cache.split(stage.data, "validation")
        return StageData(CacheDataset(train, rows), CacheDataset(validation), Collate(train.pad_token_id))

    return data_for


def resolve_resume(resume: Optional[str], c: Config, fingerprint: ConfigFingerprint,
                   say: Callable[[str], None] = print) -> Optional[LoadedCheckpoint]:
    """`--resume auto`: the newest committed checkpoint in checkpoint_dir (none: start fresh); `--resume PATH`: that one.

    Without --resume, a checkpoint_dir that already holds step checkpoints is refused: a fresh run's
    checkpoints would be mixed with (and pruned against) the earlier run's, and `--resume auto` would
    later pick the wrong one.
    """
    latest = find_latest(c.checkpoint_dir)
    if not resume:
        if latest is not None:
            raise UserError(f"checkpoint_dir {c.checkpoint_dir} already holds step checkpoints of an earlier run "
                            f"(newest: {latest.name}). Continue it with --resume auto, or start fresh with another "
                            "--checkpoint-dir (or delete its step-* folders).")
        return None
    if resume == "auto":
        if latest is None:
            say(f"--resume auto: no checkpoint in {c.checkpoint_dir}; starting fresh")
            return None
        return load_checkpoint(latest, fingerprint)
    return load_checkpoint(Path(resume), fingerprint)


def build_accelerator(c: Config) -> Any:
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    from latentbridge.models.backends import resolve_device, resolve_dtype

    device, _ = resolve_device(c.device)
    dtype, _ = resolve_dtype(c.use_bf16, c.use_fp16, device)
    return Accelerator(cpu=device == "cpu", mixed_precision="bf16" if dtype == torch.bfloat16 else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def run(config: Config, options: ModeOptions, *, stop_after_steps: Optional[int] = None) -> int:
    from latentbridge.models.bridge import build_model
    from latentbridge.modes.preprocess import ensure_cache, load_cache_encoder_state, with_tiny_assets
    from latentbridge.modes.specs import model_spec
    from latentbridge.training.trainer import Trainer
    from latentbridge.ui.progress import make_progress_display

    from accelerate.utils import set_seed

    stages = plan(config)
    accelerator = build_accelerator(config)
    set_seed(config.seed)  # python, numpy, torch (+cuda): dropout and everything else drawn globally
    display = make_progress_display(config.use_tui, accelerator.is_main_process)
    try:
        with accelerator.main_process_first():  # rank 0 builds the assets and cache, the others then reuse them
            config = with_tiny_assets(config, log=display.message)  # the model fields may move to corpus models
            cache = ensure_cache(config, log=display.message, allow_build=config.run_preprocessing).cache
        fingerprint = checkpoint_fingerprint(config)
        resume = resolve_resume(options.resume, config, fingerprint, display.message)
        model = build_model(model_spec(config, device=str(accelerator.device)), seed=config.seed)
        load_cache_encoder_state(cache, model.encoder)  # the compressor the cached latents came from
        if resume is None:
            _start_from_pretrain_best(config, model, stages, fingerprint, display.message)
        trainer = Trainer(model, stages, stage_data(config, cache), train_settings(config, stop_after_steps=stop_after_steps),
                          fingerprint=fingerprint, config=config.to_dict(), accelerator=accelerator, display=display)
        result = trainer.train(resume)
    finally:
        display.close()
    if accelerator.is_main_process:
        if result.interrupted:
            print(f"Stopped at step {result.state.global_step}; continue with --resume auto.")
        else:
            print(f"Training done ({result.state.global_step} steps). Model: {result.handoff}")
    return 130 if result.interrupted else 0


def _start_from_pretrain_best(c: Config, model: Any, stages: tuple[Stage, ...], fingerprint: ConfigFingerprint,
                              say: Callable[[str], None]) -> None:
    """Fine-tuning without pretraining in this run starts from the pretraining best model when there is one."""
    path = Path(c.checkpoint_dir) / c.pretrain_best_model_filename
    if stages and stages[0].data == "dialogue" and not c.run_pretraining and path.exists():
        model.load_trainable_state_dict(load_model_file(path, fingerprint).model)
        say(f"starting from {path}")
