"""`--mode train`: the staged pipeline.

    run(config, options) -> exit code
        plan the stages (recipe.plan) -> cache (built when missing) -> model -> resume? -> Trainer.train()

Exit codes: 0 done, 130 stopped by Ctrl-C (a checkpoint was saved; `--resume auto` continues).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed

from latentbridge import recipe
from latentbridge.caching import ensure_cache, load_cache_encoder_state
from latentbridge.config import Config
from latentbridge.data.cache import Cache
from latentbridge.data.loader import CacheDataset, Collate, select_indices
from latentbridge.errors import UserError
from latentbridge.models.bridge import LatentBridge, build_model
from latentbridge.modes import ModeOptions
from latentbridge.training.checkpoint import (ConfigFingerprint, LoadedCheckpoint, find_latest, load_checkpoint,
                                              load_model_file)
from latentbridge.training.stages import Stage
from latentbridge.training.trainer import StageData, Trainer
from latentbridge.ui.cache_progress import console_progress
from latentbridge.ui.progress import make_progress_display


def stage_data(cache: Cache, seed: int) -> Callable[[Stage], StageData]:
    """Stage -> StageData over the cache: the stage's rows of `<data>/train` (its caps, a seeded subset) and all
    of `<data>/validation`."""

    def data_for(stage: Stage) -> StageData:
        train = cache.split(stage.data, "train")
        rows = select_indices(train, total_cap=stage.max_samples, source_caps=dict(stage.dataset_caps), seed=seed)
        validation = cache.split(stage.data, "validation")
        metadata = not stage.uses_cache  # only a stage that encodes live reads the text (npy: from the jsonl lines)
        return StageData(CacheDataset(train, rows, metadata), CacheDataset(validation, metadata=metadata),
                         Collate(train.pad_token_id))

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


def build_accelerator(c: Config) -> Accelerator:
    device = recipe.resolved_device(c)
    bf16 = recipe.compute_precision(c, device) == "bf16"
    return Accelerator(cpu=device == "cpu", mixed_precision="bf16" if bf16 else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def run(config: Config, options: ModeOptions, *, stop_after_steps: Optional[int] = None) -> int:
    stages = recipe.plan(config)
    accelerator = build_accelerator(config)
    set_seed(config.seed)  # python, numpy, torch (+cuda): dropout and everything else drawn globally
    display = make_progress_display(config.use_tui, accelerator.is_main_process)
    try:
        # every rank encodes its share of a cache build; rank 0 merges the shards and speaks for it
        cache = ensure_cache(config, console_progress(use_rich=config.use_tui), log=display.message,
                             allow_build=config.run_preprocessing).cache
        fingerprint = recipe.checkpoint_fingerprint(config)
        resume = resolve_resume(options.resume, config, fingerprint, display.message)
        model = build_model(recipe.model_spec(config, device=str(accelerator.device)), seed=config.seed)
        load_cache_encoder_state(cache, model.encoder)  # the compressor the cached latents came from
        if resume is None:
            _start_from_pretrain_best(config, model, stages, fingerprint, display.message)
        settings = recipe.train_settings(config, stop_after_steps=stop_after_steps)
        trainer = Trainer(model, stages, stage_data(cache, config.seed), settings, fingerprint=fingerprint,
                          config=config.to_dict(), accelerator=accelerator, display=display)
        result = trainer.train(resume)
    finally:
        display.close()
    if accelerator.is_main_process:
        if result.interrupted:
            print(f"Stopped at step {result.state.global_step}; continue with --resume auto.")
        else:
            print(f"Training done ({result.state.global_step} steps). Model: {result.handoff}")
    return 130 if result.interrupted else 0


def _start_from_pretrain_best(c: Config, model: LatentBridge, stages: tuple[Stage, ...], fingerprint: ConfigFingerprint,
                              say: Callable[[str], None]) -> None:
    """Fine-tuning without pretraining in this run starts from the pretraining best model when there is one."""
    path = Path(c.checkpoint_dir) / c.pretrain_best_model_filename
    if stages and stages[0].data == "dialogue" and not c.run_pretraining and path.exists():
        model.load_trainable_state_dict(load_model_file(path, fingerprint).model)
        say(f"starting from {path}")
