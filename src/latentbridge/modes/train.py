"""`--mode train`: the staged pipeline.

    run(config, options) -> RunResult (the hand-off model, summary.json; exit code 130 when interrupted)
        the run folder (a new one, or the latest for --resume auto) -> lock checkpoint_dir and output_dir -> a
        finished run? done -> the checks that need no model -> plan the stages (recipe.plan) -> trackers
        -> cache (built when missing) -> model -> resume? -> Trainer.train() -> plots (output_dir/plots/)

Exit codes: 0 done, 130 stopped by Ctrl-C (a checkpoint was saved; `--resume auto` continues), 2 for bad
input, a checkpoint_dir in use by another run among them.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import broadcast_object_list, set_seed
from rich.console import Console

from latentbridge import recipe
from latentbridge.cached_latents import ensure_cache, load_cache_encoder_state
from latentbridge.config import Config
from latentbridge.data.cache import Cache
from latentbridge.data.loader import CacheDataset, Collate, select_indices
from latentbridge.errors import UserError
from latentbridge.evaluation.rouge import rouge_scores
from latentbridge.locks import RUN_LOCK, RunLock
from latentbridge.models.bridge import LatentBridge, build_model
from latentbridge.models.runtime import log_notes, resolve_runtime
from latentbridge.models.specs import Runtime
from latentbridge.modes import ModeOptions, RunResult, in_run_folder, run_root, training_folder
from latentbridge.runs import is_run_root, run_folders
from latentbridge.training.checkpoint import (ARCHITECTURE_FIELDS, ConfigFingerprint, LoadedCheckpoint, find_latest, load_checkpoint,
                                              load_model_file, restore)
from latentbridge.training import sharding
from latentbridge.training.metrics import METRICS_FILE, SUMMARY_FILE
from latentbridge.training.plots import PLOTS_DIR, write_plots
from latentbridge.training.display import ProgressDisplay
from latentbridge.training.stages import Stage
from latentbridge.training.tracking import project_configuration, resolve_trackers, start_trackers
from latentbridge.training.trainer import StageData, Trainer, TrainResult
from latentbridge.ui.cache_progress import console_progress
from latentbridge.ui.dashboard import make_progress_display


def stage_data(cache: Cache, seed: int, say: Callable[[str], None] = print) -> Callable[[Stage], StageData]:
    """Stage -> StageData over the cache: the stage's rows of `<collection>/train` (its caps, a seeded subset) and
    all of `<collection>/validation`. A batch size larger than those rows is legal but almost surely a mistake: said."""

    def data_for(stage: Stage) -> StageData:
        train = cache.split(stage.collection, "train")
        rows = select_indices(train, total_cap=stage.max_samples, source_caps=dict(stage.dataset_caps), seed=seed)
        if stage.batch_size > len(rows):
            say(f"Warning: stage {stage.name} has batch size {stage.batch_size}, more than the {len(rows)} examples "
                f"of its training split {stage.collection}/train (after its caps), so every step trains on the whole "
                f"split. Lower --{stage.name.replace('_', '-')}-batch-size or --batch-size.")
        validation = cache.split(stage.collection, "validation")
        metadata = not stage.uses_cache  # only a stage that encodes live reads the text (npy: from the jsonl lines)
        return StageData(CacheDataset(train, rows, metadata), CacheDataset(validation, metadata=metadata),
                         Collate(train.pad_token_id))

    return data_for


# Fields the checkpoint fingerprint compares itself (naming both values): the resume check leaves them to it.
_FINGERPRINTED = frozenset({*ARCHITECTURE_FIELDS, "middle_architecture", "middle_layers", *recipe.LORA_FIELDS})


def refuse_an_earlier_run(c: Config, resume: Optional[str]) -> None:
    """Without --resume, a checkpoint_dir that already holds step checkpoints (or run folders) is refused: a fresh
    run's checkpoints would be mixed with (and pruned against) the earlier run's, and `--resume auto` would later
    pick the wrong one. Needs no model: runs before anything is built."""
    if resume:
        return
    latest = find_latest(c.checkpoint_dir)
    if latest is not None:
        raise UserError(f"checkpoint_dir {c.checkpoint_dir} already holds step checkpoints of an earlier run "
                        f"(newest: {latest.name}). Continue it with --resume auto, or start fresh with another "
                        "--checkpoint-dir (or leave --checkpoint-dir out: each run then gets its own folder).")
    if is_run_root(c.checkpoint_dir):
        runs = ", ".join(p.name for p in run_folders(c.checkpoint_dir)[-3:])
        raise UserError(f"checkpoint_dir {c.checkpoint_dir} holds run folders ({runs}), not one run. Leave --checkpoint-dir out to start a "
                        "new run folder there (--preset or a config file naming it does that), or name one run's "
                        "folder.")


def resume_point(c: Config, resume: Optional[str]) -> Optional[Path]:
    """The step checkpoint `--resume` continues from (None: start fresh)."""
    if resume == "auto":
        return find_latest(c.checkpoint_dir)
    return Path(resume) if resume else None


def finished_handoff(c: Config, resume: Optional[str]) -> Optional[Path]:
    """With `--resume auto`, the hand-off model of a run that already finished (it is written only at the end)."""
    path = Path(c.checkpoint_dir) / c.handoff_best_model_filename
    return path if resume == "auto" and path.is_file() else None


def refuse_changed_settings(c: Config, checkpoint: Path) -> None:
    """A resume continues the run it resumes: every field that changes what training computes must match the
    checkpoint's config, unless named in resume_allow_changes. Reads only the checkpoint's config.json (verified
    with the rest of the checkpoint when it loads)."""
    try:
        saved = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable: loading the checkpoint names the damage
    if not isinstance(saved, dict):
        return
    changes = [(n, old, new) for n, old, new in c.resume_changes(saved) if n not in _FINGERPRINTED]
    if changes:
        listed = "; ".join(f"{n}: checkpoint {old!r}, now {new!r}" for n, old, new in changes)
        names = ",".join(n for n, _, _ in changes)
        raise UserError(f"--resume would continue the run of {checkpoint} with different settings ({listed}). A "
                        "resumed run must compute what it started: use the checkpoint's values, start a new run "
                        f"(leave out --resume), or allow a deliberate change with --resume-allow-changes {names}.")


def resolve_resume(resume: Optional[str], c: Config, fingerprint: ConfigFingerprint,
                   say: Callable[[str], None] = print) -> Optional[LoadedCheckpoint]:
    """`--resume auto`: the newest committed checkpoint in checkpoint_dir (none: start fresh); `--resume PATH`: that
    one. The checks that need no model ran already (`check_before_work`)."""
    point = resume_point(c, resume)
    if point is None:
        if resume == "auto":
            say(f"--resume auto: no checkpoint in {c.checkpoint_dir}; starting fresh")
        return None
    return load_checkpoint(point, fingerprint)


def place_run(c: Config, options: ModeOptions, accelerator: Accelerator) -> Config:
    """The config writing into this training's run folder (latentbridge.runs): chosen by rank 0 (which creates a
    new one) and shared with the other ranks. A checkpoint_dir that was given is used as it is."""
    root = run_root(c, options.sources)
    if root is None:
        return c
    folder = training_folder(root, options.resume) if accelerator.is_main_process else None
    if accelerator.num_processes > 1:
        folder = broadcast_object_list([folder])[0]
    return in_run_folder(c, Path(folder), options.sources)


def check_before_work(c: Config, resume: Optional[str]) -> None:
    """Every check of the run's folders that needs no model, before anything is built: an earlier run in a fresh
    run's folder, a resume under changed settings."""
    refuse_an_earlier_run(c, resume)
    point = resume_point(c, resume)
    if point is not None:
        refuse_changed_settings(c, point)


def build_accelerator(c: Config, runtime: Runtime, trackers: Sequence[str] = ()) -> Accelerator:
    """The run's accelerator: device, precision, DDP, and the experiment trackers (training/tracking.py)."""
    return Accelerator(cpu=runtime.device == "cpu", mixed_precision="bf16" if runtime.precision == "bf16" else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
                       log_with=list(trackers) or None, project_config=project_configuration(Path(c.output_dir)))


def rouge_scorer(outputs: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE F1 x 100 of greedy outputs during training (the eval report's scorer)."""
    return {k: 100 * v for k, v in rouge_scores(outputs, references).as_dict().items()}


def locked_folders(c: Config) -> dict[Path, str]:
    """The folders a training writes and locks: checkpoint_dir, and output_dir when it is another folder (two
    runs appending to one metrics.jsonl would interleave their lines)."""
    folders = {Path(c.checkpoint_dir): f"checkpoint_dir {c.checkpoint_dir}"}
    if Path(c.output_dir).resolve() != Path(c.checkpoint_dir).resolve():
        folders[Path(c.output_dir)] = f"output_dir {c.output_dir}"
    return folders


@contextmanager
def run_locks(accelerator: Accelerator, folders: dict[Path, str], say: Callable[[str], None]) -> Iterator[None]:
    """One run per checkpoint_dir and per output_dir: rank 0 holds their locks for the whole run
    (latentbridge.locks), and every rank learns whether it got them, so that all stop together when another run
    is using a folder."""
    locks, error = [], None
    if accelerator.is_main_process:
        try:
            for folder, what in folders.items():
                locks.append(RunLock(folder / RUN_LOCK, what).acquire(note=say))
        except UserError as e:
            error = str(e)
    if accelerator.num_processes > 1:
        error = broadcast_object_list([error])[0]
    try:
        if error is not None:
            raise UserError(error)
        yield
    finally:
        for lock in locks:
            lock.release()


def run(config: Config, options: ModeOptions, *, stop_after_steps: Optional[int] = None) -> RunResult:
    stages = recipe.plan(config)
    runtime = resolve_runtime(recipe.runtime_request(config))
    log_notes(runtime)
    accelerator = build_accelerator(config, runtime, resolve_trackers(config.report_to))
    config = place_run(config, options, accelerator)
    accelerator.project_configuration = project_configuration(Path(config.output_dir))  # the run folder's
    console = Console()  # one console for the cache's bars, the dashboard and every note: notes print above bars
    display = make_progress_display(config.use_tui, accelerator.is_main_process, console)
    run_dir = Path(config.output_dir)
    try:
        # the locks first: a folder in use is named as such, before any check reads what its run is writing
        with run_locks(accelerator, locked_folders(config), display.message):
            done = finished_handoff(config, options.resume)
            if done is not None:
                if accelerator.is_main_process:
                    print(f"The run in {config.checkpoint_dir} is finished: nothing to resume. Its hand-off model "
                          f"is {done} (`--mode infer` and `--mode eval` load it); leave out --resume to start a new "
                          "run.")
                return RunResult("train", model_path=done, summary=read_summary(run_dir))
            check_before_work(config, options.resume)
            set_seed(config.seed)  # python, numpy, torch (+cuda): dropout and everything else drawn globally
            start_trackers(accelerator, project=config.tracker_project,
                           run_name=config.run_name or run_dir.resolve().name, run_dir=run_dir, config=config.to_dict())
            result = _train(config, options, stages, runtime.on(str(accelerator.device)), accelerator, display,
                            console, stop_after_steps)
    finally:
        accelerator.end_training()
        display.close()
    if accelerator.is_main_process:
        plots = write_plots(run_dir / METRICS_FILE, run_dir / PLOTS_DIR)
        print(f"Curves of {len(plots)} stage(s) in {run_dir / PLOTS_DIR}.")
        if result.interrupted:
            print(f"Stopped at step {result.state.global_step}; continue with --resume auto.")
        else:
            print(f"Training done ({result.state.global_step} steps). Model: {result.handoff}")
    return RunResult("train", model_path=result.handoff, summary=read_summary(run_dir), interrupted=result.interrupted)


def read_summary(run_dir: Path) -> Optional[dict]:
    """The run's summary.json (written by rank 0 at the end of training); None where there is none."""
    path = run_dir / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _train(config: Config, options: ModeOptions, stages: tuple[Stage, ...], runtime: Runtime, accelerator: Accelerator,
           display: ProgressDisplay, console: Console, stop_after_steps: Optional[int]) -> TrainResult:
    progress = console_progress(use_rich=config.use_tui, every_s=2.0, console=console)
    with accelerator.main_process_first():  # rank 0 builds the tiny preset's models, the others then reuse them
        config = recipe.with_tiny_assets(config, display.message, progress)  # for a user's corpus: its own models
    # every rank encodes its share of a cache build; rank 0 merges the shards and speaks for it
    cache = ensure_cache(config, progress, log=display.message, allow_build=config.run_preprocessing,
                         runtime=runtime).cache
    fingerprint = recipe.checkpoint_fingerprint(config)
    resume = resolve_resume(options.resume, config, fingerprint, display.message)
    model = build_model(recipe.model_spec(config, runtime), seed=config.seed,
                        on_device=not sharding.wants_sharding(accelerator))  # the trainer shards it there
    load_cache_encoder_state(cache, model.encoder)  # the compressor the cached latents came from
    if resume is None:
        _start_from_pretrain_best(config, model, stages, fingerprint, display.message)
    settings = recipe.train_settings(config, stop_after_steps=stop_after_steps)
    trainer = Trainer(model, stages, stage_data(cache, config.seed, display.message), settings, fingerprint=fingerprint,
                      config=config.to_dict(), accelerator=accelerator, display=display,
                      text_scorer=rouge_scorer if config.eval_rouge_samples else None)
    return trainer.train(resume)


def _start_from_pretrain_best(c: Config, model: LatentBridge, stages: tuple[Stage, ...], fingerprint: ConfigFingerprint,
                              say: Callable[[str], None]) -> None:
    """Fine-tuning without pretraining in this run starts from the pretraining best model when there is one."""
    path = Path(c.checkpoint_dir) / c.pretrain_best_model_filename
    if stages and stages[0].collection == "dialogue" and not c.run_pretraining and path.exists():
        restore(path, "model", model.load_trainable_state_dict, load_model_file(path, fingerprint).model)
        say(f"starting from {path}")
