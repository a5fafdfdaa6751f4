"""One module per `--mode`; each exposes `run(config, options) -> exit code` and imports no other mode.

`run(mode, config, **options)` runs one from Python exactly as the CLI does (docs/python-api.md). A mode's
module is imported only when it runs, so `--help` and `--mode config` never import torch.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.config import Config, field_names
from latentbridge.config_sources import PYTHON_SOURCE
from latentbridge.files import ensure_folder
from latentbridge.runs import latest_run, new_run_folder, run_folders

# The folders each mode writes into, checked (and created) before it starts: a path that is a file, or
# lies under one, is a UserError naming the field rather than a traceback halfway through a run.
OUTPUT_FOLDERS = {
    "preprocess": ("preprocess_cache_dir",),
    "train": ("preprocess_cache_dir", "checkpoint_dir", "output_dir"),
}
MODE_MODULES = {
    "preprocess": "latentbridge.modes.preprocess",
    "train": "latentbridge.modes.train",
    "infer": "latentbridge.modes.infer",
    "eval": "latentbridge.modes.eval",
    "config": "latentbridge.modes.show_config",
    "doctor": "latentbridge.modes.doctor",
}


@dataclass(frozen=True)
class ModeOptions:
    """Per-invocation options that are not part of the model's Config (they are never saved with it)."""

    sources: dict[str, str] = field(default_factory=dict)
    format: str = "table"
    save_config: Optional[Path] = None
    resume: Optional[str] = None
    checkpoint: Optional[Path] = None
    text: Optional[str] = None
    input_file: Optional[Path] = None
    output_file: Optional[Path] = None
    split: Optional[str] = None
    baselines: bool = False
    memory_gb: Optional[float] = None


# Fields that say where a run writes. Left to their default or a preset, checkpoint_dir is the root of run
# folders (latentbridge.runs) and output_dir the run's own folder; given any other way (a flag, an environment
# variable, a config file, Python) each is the one folder used.
RUN_LOCATION_FIELDS = ("checkpoint_dir", "output_dir")


def is_explicit(sources: Mapping[str, str], name: str) -> bool:
    """Whether `name` was set by the user (a field without a recorded source counts as set)."""
    source = sources.get(name)
    return source is None or not (source == "default" or source.startswith("preset "))


def located_by_default(sources: Mapping[str, str]) -> tuple[str, ...]:
    """The run location fields left to their default or preset."""
    return tuple(name for name in RUN_LOCATION_FIELDS if not is_explicit(sources, name))


def run_root(config: Config, sources: Mapping[str, str]) -> Optional[Path]:
    """The folder holding this config's run folders (checkpoint_dir, then run_name when set), or None when
    checkpoint_dir was given: it is then the run's own folder."""
    if is_explicit(sources, "checkpoint_dir"):
        return None
    root = Path(config.checkpoint_dir)
    return root / config.run_name if config.run_name else root


def in_run_folder(config: Config, folder: Path, sources: Mapping[str, str]) -> Config:
    """`config` writing into the run folder `folder`: checkpoints there, and metrics too unless output_dir was given."""
    output = config.output_dir if is_explicit(sources, "output_dir") else str(folder)
    return config.replace(checkpoint_dir=str(folder), output_dir=output)


def training_folder(root: Path, resume: Optional[str], say: Any = print) -> Path:
    """The run folder a training under `root` uses: the latest run for `--resume auto` (a new one when there is
    none yet), the folder of the checkpoint `--resume PATH` names, else a new run folder."""
    if resume == "auto":
        latest = latest_run(root)
        if latest is not None:
            say(f"--resume auto: the latest run under {root} is {latest}")
            return latest
    elif resume:
        return Path(resume).parent
    folder = new_run_folder(root)
    say(f"New run folder {folder} (checkpoints and metrics; {root}/latest points at it)")
    return folder


def handoff_candidates(config: Config, sources: Mapping[str, str]) -> list[Path]:
    """The hand-off model files infer and eval may load when no --checkpoint is named, newest run first: those of
    the run folders under the run root (the latest run first), else checkpoint_dir's own."""
    root = run_root(config, sources)
    name = config.handoff_best_model_filename
    if root is None:
        return [Path(config.checkpoint_dir) / name]
    latest = latest_run(root)
    folders = ([latest] if latest else []) + [f for f in reversed(run_folders(root)) if f != latest]
    found = [f / name for f in folders if (f / name).is_file()]
    return found or [root / name]  # a model trained in the root itself (before run folders, or from Python)


def model_to_load(config: Config, options: ModeOptions) -> Optional[Path]:
    """The model file infer and eval load: --checkpoint, else (checkpoint_dir left to the default or a preset) the
    latest run's hand-off model trained on the config's dataset, else None (checkpoint_dir's own hand-off)."""
    root = run_root(config, options.sources)
    if options.checkpoint is not None or root is None or not run_folders(root):
        return options.checkpoint
    from latentbridge.evaluation.loading import pick_run_model  # torch: kept out of --mode config, which imports this

    return pick_run_model(handoff_candidates(config, options.sources), config.dataset_name, root)


def run(mode: str, config: Config, *, sources: Optional[Mapping[str, str]] = None, **options: Any) -> int:
    """Run `--mode <mode>` on `config`; returns its exit code (0 done, 1 doctor found problems, 130 stopped by
    Ctrl-C). `options` are ModeOptions fields (`resume="auto"`, `text=...`, `checkpoint=...`). `sources`
    (field -> where its value came from) defaults to "python" for every field: infer and eval then take
    the sampling and location fields of `config` as if given as flags. Bad input raises UserError."""
    if mode not in MODE_MODULES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODE_MODULES)}")
    given = dict(sources) if sources is not None else {name: PYTHON_SOURCE for name in field_names()}
    mode_options = ModeOptions(sources=given, **options)
    for name in OUTPUT_FOLDERS.get(mode, ()):
        if name == "output_dir" and not is_explicit(given, name):
            continue  # the run folder, made when the run starts
        ensure_folder(getattr(config, name), f"{name} (--{name.replace('_', '-')})")
    if mode != "config" and "torch" not in sys.modules:  # the imports alone took 4-8 s here: say why it waits
        print(f"--mode {mode}: loading torch and transformers (a few seconds)", file=sys.stderr, flush=True)
    module = importlib.import_module(MODE_MODULES[mode])
    if mode != "config" and config.torch_num_threads is not None:
        import torch  # only the modes that run torch set its threads; --mode config stays torch-free

        torch.set_num_threads(config.torch_num_threads)
    return module.run(config, mode_options)
