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
        ensure_folder(getattr(config, name), f"{name} (--{name.replace('_', '-')})")
    if mode != "config" and "torch" not in sys.modules:  # the imports alone took 4-8 s here: say why it waits
        print(f"--mode {mode}: loading torch and transformers (a few seconds)", file=sys.stderr, flush=True)
    module = importlib.import_module(MODE_MODULES[mode])
    if mode != "config" and config.torch_num_threads is not None:
        import torch  # only the modes that run torch set its threads; --mode config stays torch-free

        torch.set_num_threads(config.torch_num_threads)
    return module.run(config, mode_options)
