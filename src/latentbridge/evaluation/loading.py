"""Load the hand-off model file for `infer` and `eval`, with the config it was trained under.

The model file (src/latentbridge/training/checkpoint.py) carries the resolved training config in its header, so a
trained model needs no flags repeated. Flags (or LATENTBRIDGE_* variables) may change only how text
is sampled (`SAMPLING_FIELDS`) and where things are (`LOCATION_FIELDS`: the model file, the dataset
and split to evaluate, the run folder); any other field given explicitly is ignored with one note,
because the weights only fit the architecture and settings they were trained with.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.config import Config, ConfigError, field_names
from latentbridge.errors import UserError

log = logging.getLogger("latentbridge.evaluation")

SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "do_sample", "max_generation_length", "seed",
                   "no_repeat_ngram_size")
# Where things are rather than what the model is: an explicit value wins (find the model file, evaluate
# another dataset, split or columns, write the report into this run's folder).
LOCATION_FIELDS = ("checkpoint_dir", "handoff_best_model_filename", "output_dir", "dataset_name", "train_split",
                   "validation_split", "test_split", "dataset_input_field", "dataset_target_field",
                   "dataset_input_template")
EXPLICIT_SOURCES = ("command line", "environment")


@dataclass
class LoadedModel:
    model: Any            # latentbridge.models.bridge.LatentBridge, in eval mode
    config: Config        # the checkpoint's config with the sampling overrides applied
    path: Path
    step: int
    stage: str
    fingerprint: str
    ignored: tuple[str, ...] = ()  # explicitly given fields that the checkpoint's config overrode

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "step": self.step, "stage": self.stage, "fingerprint": self.fingerprint}


def handoff_path(config: Config, checkpoint: Optional[Path]) -> Path:
    return Path(checkpoint) if checkpoint is not None else Path(config.checkpoint_dir) / config.handoff_best_model_filename


def checkpoint_config(saved: Mapping[str, Any], path: Path) -> Config:
    """The Config stored in a model file; UserError when this version cannot rebuild it."""
    if not isinstance(saved, Mapping) or not saved:
        raise UserError(f"The model file {path} carries no training config, so its model cannot be rebuilt. "
                        "Use a model file written by `--mode train` of this version.")
    unknown = sorted(set(saved) - set(field_names()))
    if unknown:
        raise UserError(f"The model file {path} was written with a config this version does not know "
                        f"(unknown fields: {', '.join(unknown[:8])}): it comes from an incompatible version of "
                        "latentbridge. Retrain it, or use the version that wrote it.")
    try:
        return Config(**dict(saved))
    except ConfigError as error:
        raise UserError(f"The model file {path} holds a config that this version rejects, so it is incompatible "
                        f"(retrain it, or use the version that wrote it). {error}") from None
    except TypeError as error:
        raise UserError(f"The model file {path} holds a malformed config ({error}).") from None


def apply_overrides(saved: Config, given: Config, sources: Mapping[str, str]) -> tuple[Config, tuple[str, ...]]:
    """(saved config with the explicitly given sampling fields, names of explicit fields that were ignored)."""
    explicit = [name for name, source in sources.items() if source in EXPLICIT_SOURCES and name in field_names()]
    overridable = SAMPLING_FIELDS + LOCATION_FIELDS
    changes = {name: getattr(given, name) for name in explicit if name in overridable}
    ignored = tuple(name for name in explicit
                    if name not in overridable and getattr(given, name) != getattr(saved, name))
    config = saved.replace(**changes) if changes else saved
    return config, ignored


def _ensure_backbones(config: Config) -> None:
    """The tiny preset's models are built on first use (from the corpus the config names); build them here too
    when they are missing. Models of a corpus that changed since land elsewhere: the backbone check refuses."""
    if not config.tiny_assets_dir:
        return
    missing = [name for name in (config.modernbert_model, config.gpt2_model) if not Path(name).exists()]
    if missing:
        from latentbridge.modes.preprocess import with_tiny_assets

        with_tiny_assets(config, log=lambda message: print(message, file=sys.stderr))


def load_state(model: Any, state: Mapping[str, Any], path: Path) -> None:
    """Put a model file's tensors into `model`: the trainable state (the usual hand-off) or a full state dict."""
    trainable = set(model.trainable_state_dict())
    keys = set(state)
    try:
        if keys == trainable:
            model.load_trainable_state_dict(dict(state))
            return
        if keys >= trainable and keys <= set(model.state_dict()):
            model.load_state_dict(dict(state), strict=False)
            return
    except RuntimeError as error:  # shape mismatch
        first = str(error).strip().splitlines()
        raise UserError(f"The weights in {path} do not fit the model its config describes ({first[-1].strip()}): "
                        "the checkpoint is incompatible with these backbones.") from None
    missing, unexpected = sorted(trainable - keys), sorted(keys - set(model.state_dict()))
    raise UserError(f"The weights in {path} do not fit the model its config describes: missing {missing[:4]}, "
                    f"unexpected {unexpected[:4]}. The checkpoint was written by an incompatible model.")


def _ensure_same_backbones(path: Path, found: str, saved: Config) -> None:
    """Refuse a model file whose backbone folders changed since training (the fingerprint hashes them)."""
    from latentbridge.modes.train import checkpoint_fingerprint
    from latentbridge.training.checkpoint import load_model_file

    expected = checkpoint_fingerprint(saved)
    if expected.digest != found:
        load_model_file(path, expected)  # reads again only to raise its error naming what differs


@dataclass
class HandoffFile:
    """A model file read and checked, before its model is built: its tensors, the saved and the effective config."""

    path: Path
    file: Any  # latentbridge.training.checkpoint.ModelFile
    saved: Config
    config: Config
    ignored: tuple[str, ...]


def read_handoff(given: Config, checkpoint: Optional[Path] = None,
                 sources: Optional[Mapping[str, str]] = None) -> HandoffFile:
    """The hand-off model file (or `checkpoint`) and its config with the explicit overrides applied."""
    from latentbridge.training.checkpoint import load_model_file

    path = handoff_path(given, checkpoint)
    if not path.exists():
        how = "--checkpoint" if checkpoint is not None else "checkpoint_dir / handoff_best_model_filename"
        raise UserError(f"No trained model at {path} (from {how}). Train one first (`python main.py --mode train "
                        "--preset tiny`), or point --checkpoint at a model file written by training.")
    loaded = load_model_file(path)
    saved = checkpoint_config(loaded.config, path)
    config, ignored = apply_overrides(saved, given, sources or {})
    if ignored:
        print(f"Note: using the checkpoint's own values for {', '.join(ignored)} (only "
              f"{', '.join(SAMPLING_FIELDS)} can change after training).", file=sys.stderr)
    return HandoffFile(path, loaded, saved, config, ignored)


def load_handoff(given: Config, checkpoint: Optional[Path] = None, sources: Optional[Mapping[str, str]] = None,
                 device: Optional[str] = None, handoff: Optional[HandoffFile] = None) -> LoadedModel:
    """The hand-off model (or `checkpoint`) ready for inference, and its config with the sampling overrides.
    `handoff`: the file when `read_handoff` already read it."""
    handoff = handoff or read_handoff(given, checkpoint, sources)
    path, loaded, saved, config, ignored = handoff.path, handoff.file, handoff.saved, handoff.config, handoff.ignored
    _ensure_backbones(saved)
    _ensure_same_backbones(path, loaded.fingerprint, saved)

    from latentbridge.models.bridge import build_model
    from latentbridge.modes.specs import model_spec

    spec = model_spec(config, device)
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, gradient_checkpointing=False,
                                                                 compile=False))
    model = build_model(spec)
    load_state(model, loaded.model, path)
    model.eval()
    return LoadedModel(model, config, path, loaded.step, loaded.stage, loaded.fingerprint, ignored)
