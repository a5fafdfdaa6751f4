"""Shared fixtures of the inference/evaluation tests: tiny assets in a temporary folder and a hand-off
model file written through the training checkpoint format from a freshly initialised tiny model, so
infer and eval are tested end to end without training. Import the fixtures into a test module with
`from tests.evaluation.fixtures import *`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from latentbridge.config import Config
from tests.factories import assets_config

__all__ = ["Handoff", "handoff", "tiny_assets_root", "write_handoff", "assets_config"]


@dataclass(frozen=True)
class Handoff:
    config: Config  # the config saved in the file (paths into the temporary folder)
    path: Path      # checkpoint_dir / handoff_best_model_filename


def write_handoff(config: Config, model=None, seed: int = 0, stage: str = "init") -> Path:
    """Save `model` (default: a fresh tiny model for `config`) as the hand-off model file of `config`."""
    from latentbridge.models.bridge import build_model
    from latentbridge.modes.specs import model_spec
    from latentbridge.modes.train import checkpoint_fingerprint
    from latentbridge.training.checkpoint import write_model_file

    if model is None:
        torch.manual_seed(seed)
        model = build_model(model_spec(config))
    values = config.to_dict()
    path = Path(config.checkpoint_dir) / config.handoff_best_model_filename
    return write_model_file(path, model.trainable_state_dict(), config=values, fingerprint=checkpoint_fingerprint(config),
                            step=0, stage=stage)


@pytest.fixture(scope="session")
def tiny_assets_root(tiny_root) -> Path:
    """The suite's tiny assets (tests/conftest.py builds them once per session)."""
    return tiny_root


@pytest.fixture(scope="session")
def handoff(tiny_assets_root, tmp_path_factory) -> Handoff:
    work = tmp_path_factory.mktemp("handoff")
    config = assets_config(tiny_assets_root, checkpoint_dir=str(work / "ck"), output_dir=str(work / "runs"),
                           max_generation_length=8, batch_size=16)
    return Handoff(config, write_handoff(config))
