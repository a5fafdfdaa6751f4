"""One module per `--mode`; each exposes `run(config, options) -> RunResult` and imports no other mode.

`run(config, mode, **options)` runs one from Python exactly as the CLI does (docs/python-api.md). A mode's
module is imported only when it runs, so `--help` and `--mode config` never import torch.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.config import Config, field_names
from latentbridge.config_sources import PYTHON_SOURCE
from latentbridge.errors import UserError
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


OUTPUT_FORMATS = ("table", "json", "yaml")  # --mode config and --mode doctor print as one of these


def _option(default: Any, help: str, **flag: Any) -> Any:
    """A ModeOptions field and its flag: the CLI (cli.py) makes one option of each, with this help and `flag`'s
    settings (metavar, choices, bounds)."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class ModeOptions:
    """Per-invocation options that are not part of the model's Config (they are never saved with it)."""

    sources: dict[str, str] = field(default_factory=dict)  # field -> where its value came from; not a flag
    format: str = _option("table", "--mode config: output format.", show_default=True,
                          metavar="|".join(OUTPUT_FORMATS), choices=OUTPUT_FORMATS)
    save_config: Optional[Path] = _option(None, "--mode config: also write the resolved config here (.json, "
                                          ".yaml).", metavar="FILE")
    resume: Optional[str] = _option(None, "--mode train: continue from the latest step checkpoint (auto) or "
                                    "from PATH.", metavar="auto|PATH")
    checkpoint: Optional[Path] = _option(None, "--mode infer/eval: model file to load (default: the file named "
                                         "handoff_best_model_filename in checkpoint_dir).", metavar="FILE")
    text: Optional[str] = _option(None, "--mode infer: the text to transform.", metavar="TEXT")
    input_file: Optional[Path] = _option(None, "--mode infer: one text per line, or JSON Lines whose text is read "
                                         "from the column the model was trained on; `-` streams standard input: "
                                         "one answer per line, flushed as each line is read.", metavar="FILE")
    output_file: Optional[Path] = _option(None, "--mode infer/eval: write results here (jsonl/json).",
                                          metavar="FILE")
    split: Optional[str] = _option(None, "--mode eval: dataset split (default: test_split).", metavar="SPLIT")
    baselines: bool = _option(False, "--mode eval: also score the baselines.")
    memory_gb: Optional[float] = _option(None, "--mode doctor: list the batch sizes, precisions and checkpointing "
                                         "choices that fit this many GiB.", min=0.01, metavar="GIB")


OPTION_NAMES = tuple(f.name for f in fields(ModeOptions) if "flag" in f.metadata)  # the options a user gives


@dataclass(frozen=True)
class RunResult:
    """What one mode did, for Python callers (`latentbridge.run`); the CLI exits with `exit_code`."""

    mode: str
    model_path: Optional[Path] = None          # train: the hand-off model it wrote; infer, eval: the model loaded
    summary: Optional[dict[str, Any]] = None   # train: the run's summary.json (None where none was written)
    report: Optional[dict[str, Any]] = None    # eval: the report written to --output-file or eval_<split>.json
    outputs: tuple[str, ...] = ()              # infer: one output text per input (not for the stream)
    cache_dir: Optional[Path] = None           # preprocess: the latent cache's folder
    interrupted: bool = False                  # train: stopped by Ctrl-C or SIGTERM after saving a checkpoint
    refused: int = 0                           # infer --input-file -: requests answered with an error
    problems: tuple[str, ...] = ()             # doctor: what it found wrong

    @property
    def exit_code(self) -> int:
        """130 stopped (continue with --resume auto), 2 some stream requests refused, 1 doctor found problems,
        else 0. A UserError (bad input) is raised, not returned: the CLI exits 2 for it."""
        if self.interrupted:
            return 130
        if self.refused:
            return 2
        return 1 if self.problems else 0


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
    from latentbridge.evaluation.trained_model import pick_run_model  # torch: kept out of --mode config, which imports this

    return pick_run_model(handoff_candidates(config, options.sources), config.dataset_name, root)


def run(config: Config, mode: str = "train", *, sources: Optional[Mapping[str, str]] = None,
        **options: Any) -> RunResult:
    """Run `--mode <mode>` on `config` and return what it did (`RunResult`: the hand-off model, the summary, the
    eval report, ...; `.exit_code` is the CLI's). `options` are ModeOptions fields (`resume="auto"`, `text=...`,
    `checkpoint=...`). `sources` (field -> where its value came from) defaults to "python" for every field:
    infer and eval then take the sampling and location fields of `config` as if given as flags. Bad input
    raises UserError."""
    if not isinstance(config, Config):
        raise TypeError(f"run(config, mode=...) takes a Config first, got {config!r} (latentbridge.load_config "
                        "makes one)")
    if mode not in MODE_MODULES:
        raise UserError(f"mode {mode!r} is not a mode; expected one of {', '.join(MODE_MODULES)}.")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise UserError(f"run(): {', '.join(unknown)} {'is not an option' if len(unknown) == 1 else 'are not options'}"
                        f" of a mode; expected some of {', '.join(OPTION_NAMES)}.")
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
