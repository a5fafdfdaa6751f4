"""A trained model file and the config it was trained under: the Python API's model (docs/python-api.md),
which `--mode infer` and `--mode eval` use too.

    load(path) -> TrainedModel                         a model file, a folder holding best_model.pt, or a root of
                                                       run folders (its latest run's)
    load_handoff(config, checkpoint, sources)          the run's hand-off model, as infer/eval load it
    TrainedModel.generate(texts, **sampling)           text in, text out: batched, seeded
    TrainedModel.encode(texts)                         the latents the middle and adapter work on

The model file (src/latentbridge/training/checkpoint.py) carries the resolved training config in its header, so a
trained model needs no flags repeated. Flags (or LATENTBRIDGE_* variables, or the fields of a Config run
from Python) may change only how text is sampled (`SAMPLING_FIELDS`) and where things are
(`LOCATION_FIELDS`: the model file, the dataset, split and number of examples to evaluate, the run folder); any other field
given explicitly is ignored with one note, because the weights only fit the architecture and settings
they were trained with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from safetensors import safe_open

from latentbridge import recipe
from latentbridge.config import Config, ConfigError, field_names
from latentbridge.config_sources import PYTHON_SOURCE
from latentbridge.errors import UserError
from latentbridge.evaluation.generation import check_lengths, summarize
from latentbridge.models.backends import autocast
from latentbridge.models.bridge import LatentBridge, build_model
from latentbridge.models.runtime import log_notes, resolve_runtime
from latentbridge.runs import latest_run
from latentbridge.training.checkpoint import MANIFEST_NAME, load_model_file

SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "do_sample", "max_generation_length", "seed",
                   "no_repeat_ngram_size")
# Where things are rather than what the model is: an explicit value wins (find the model file, evaluate
# another dataset, split, columns or number of examples, write the report into this run's folder).
LOCATION_FIELDS = ("checkpoint_dir", "handoff_best_model_filename", "output_dir", "dataset_name", "train_split",
                   "validation_split", "test_split", "eval_max_samples", "dataset_input_field",
                   "dataset_target_field", "dataset_input_template")
EXPLICIT_SOURCES = ("command line", "environment", PYTHON_SOURCE)
HANDOFF_DEFAULT = Config.__dataclass_fields__["handoff_best_model_filename"].default


@dataclass
class TrainedModel:
    """A trained LatentBridge, in eval mode, with the config it was trained under (sampling overrides applied)."""

    model: LatentBridge
    config: Config
    path: Path
    step: int
    stage: str
    fingerprint: str
    ignored: tuple[str, ...] = ()  # explicitly given fields that the checkpoint's config overrode
    trained: Optional[Config] = None  # the config as trained, before sampling and location overrides

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "step": self.step, "stage": self.stage, "fingerprint": self.fingerprint}

    def with_sampling(self, **sampling: Any) -> Config:
        """The model's config with `sampling` (SAMPLING_FIELDS) applied, validated like any Config change."""
        other = sorted(set(sampling) - set(SAMPLING_FIELDS))
        if other:
            raise TypeError(f"generate() takes the sampling fields {', '.join(SAMPLING_FIELDS)}; "
                            f"not {', '.join(other)}")
        return self.config.replace(**sampling) if sampling else self.config

    def generate(self, texts: Sequence[str], *, batch_size: Optional[int] = None,
                 where: Optional[Sequence[str]] = None, **sampling: Any) -> list[str]:
        """One output text per input text, in batches of `batch_size` (default: the config's). `sampling`
        overrides the config's temperature, top_p, top_k, do_sample, max_generation_length and seed; the
        same seed and texts give the same outputs. A text longer than 4 x max_seq_len tokens is refused
        (`where` names each text in that error; default `texts[i]`), a longer than max_seq_len one is
        truncated with a note, as in training."""
        c = self.with_sampling(**sampling)
        texts = list(texts)
        check_lengths(self.model.encoder.tokenizer, texts, where or [f"texts[{i}]" for i in range(len(texts))],
                      c.max_seq_len)
        return summarize(self.model, texts, max_input_len=c.max_seq_len, sampling=recipe.sampling_spec(c),
                         batch_size=batch_size or c.batch_size, seed=c.seed)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents (N, latent_seq_len, latent_dim) float32, mask (N, latent_seq_len) bool) of `texts`, on the
        model's device: what the encoder and compressor make of each text (truncated to max_seq_len tokens)."""
        c, device = self.config, self.model.device
        size = batch_size or c.batch_size
        latents, masks = [], []
        with autocast(device, self.model.compute_dtype):
            for start in range(0, len(texts), size):
                ids, mask = self.model.encoder.tokenize(list(texts[start:start + size]), c.max_seq_len, device)
                batch_latents, batch_mask = self.model.encode(ids, mask)
                latents.append(batch_latents.float())
                masks.append(batch_mask)
        return torch.cat(latents), torch.cat(masks)


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
    if any(not Path(name).exists() for name in (config.modernbert_model, config.gpt2_model)):
        recipe.with_tiny_assets(config, log=lambda message: print(message, file=sys.stderr))


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
    expected = recipe.checkpoint_fingerprint(saved)
    if expected.digest != found:
        load_model_file(path, expected)  # reads again only to raise its error naming what differs


def load(path: str | Path, *, device: Optional[str] = None) -> TrainedModel:
    """The trained model in `path`: a model file (`best_model.pt`, ...), a step checkpoint folder, or a folder
    holding the hand-off file `best_model.pt` (a run's checkpoint_dir). `device`: default the config's."""
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST_NAME).exists():
        latest = latest_run(path)  # a root of run folders: its latest run
        path = (latest if latest is not None and not (path / HANDOFF_DEFAULT).exists() else path) / HANDOFF_DEFAULT
    if not path.exists():
        raise UserError(f"No trained model at {path}. Give a model file written by `--mode train` (or the "
                        f"checkpoint_dir holding its {HANDOFF_DEFAULT}).")
    return _load(path, device=device)


def trained_on(path: Path) -> Optional[Mapping[str, Any]]:
    """The training config in a model file's header, unverified (enough to choose a run; the chosen file is
    verified when it loads); None when it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as f:
            saved = json.loads((f.metadata() or {}).get("config", "null"))
    except Exception:  # any unreadable file: not a candidate; loading a named one reports why
        return None
    return saved if isinstance(saved, dict) else None


def same_dataset(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two dataset_name values name one dataset (`my_docs/` is `my_docs`)."""
    return a is not None and b is not None and os.path.normpath(a) == os.path.normpath(b)


def describe_training(saved: Mapping[str, Any]) -> str:
    """'dataset my_docs/ (input column body, target column summary_line)' of a training config."""
    source = (f"input template {saved.get('dataset_input_template')!r}" if saved.get("dataset_input_template")
              else f"input column {saved.get('dataset_input_field') or 'found by name'}")
    return (f"dataset {saved.get('dataset_name')} ({source}, target column "
            f"{saved.get('dataset_target_field') or 'found by name'})")


def pick_run_model(candidates: Sequence[Path], dataset_name: str, root: Path) -> Path:
    """The newest of `candidates` (hand-off files of a root's run folders, newest first) trained on `dataset_name`;
    UserError naming what the runs there trained on when none was (a model is never guessed)."""
    trained = [(path, trained_on(path)) for path in candidates]
    for path, saved in trained:
        if saved is not None and same_dataset(saved.get("dataset_name"), dataset_name):
            print(f"Loading {path}: the latest run under {root} trained on {dataset_name}.", file=sys.stderr)
            return path
    others = "; ".join(f"{p.parent.name}: {describe_training(saved)}" for p, saved in trained if saved)
    raise UserError(f"No run under {root} has a trained model of dataset {dataset_name}"
                    + (f" (its runs trained on: {others})" if others else "") + ". Name the dataset the model "
                    "was trained on with --dataset-name, point --checkpoint at a model file, or train one first.")


def load_handoff(given: Config, checkpoint: Optional[Path] = None, sources: Optional[Mapping[str, str]] = None,
                 device: Optional[str] = None) -> TrainedModel:
    """The hand-off model of `given`'s run (or `checkpoint`), with the explicitly given sampling and location
    fields of `given` applied (`sources`: field -> where its value came from)."""
    path = handoff_path(given, checkpoint)
    if not path.exists():
        how = "--checkpoint" if checkpoint is not None else "checkpoint_dir / handoff_best_model_filename"
        raise UserError(f"No trained model at {path} (from {how}). Train one first (`python main.py --mode train "
                        "--preset tiny`), or point --checkpoint at a model file written by training.")
    return _load(path, given, sources, device)


def _load(path: Path, given: Optional[Config] = None, sources: Optional[Mapping[str, str]] = None,
          device: Optional[str] = None) -> TrainedModel:
    loaded = load_model_file(path)
    saved = checkpoint_config(loaded.config, path)
    config, ignored = apply_overrides(saved, given, sources or {}) if given is not None else (saved, ())
    if ignored:
        print(f"Note: using the checkpoint's own values for {', '.join(ignored)} (only "
              f"{', '.join(SAMPLING_FIELDS)} can change after training).", file=sys.stderr)
    _ensure_backbones(saved)
    _ensure_same_backbones(path, loaded.fingerprint, saved)
    runtime = resolve_runtime(recipe.runtime_request(config), device)  # the trained model's requests, here
    log_notes(runtime)
    spec = recipe.model_spec(config, runtime)
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, gradient_checkpointing=False,
                                                                 compile=False))
    model = build_model(spec)
    load_state(model, loaded.model, path)
    model.eval()
    return TrainedModel(model, config, path, loaded.step, loaded.stage, loaded.fingerprint, ignored, saved)
