"""Fixtures of the reliability tests: intact caches, a step checkpoint and a hand-off file, built once a
session for tests to copy and damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from latentbridge.cached_latents import ensure_cache
from latentbridge.config import Config
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run as train
from tests.factories import train_config, write_handoff


@pytest.fixture(scope="session")
def intact_caches(tiny_root, tmp_path_factory) -> dict[str, Config]:
    """format -> a config whose preprocess_cache_dir holds its complete cache (tiny assets, small caps)."""
    work = tmp_path_factory.mktemp("caches")
    configs = {fmt: train_config(tiny_root, work / fmt, preprocess_format=fmt) for fmt in ("jsonl", "npy")}
    for config in configs.values():
        ensure_cache(config, log=lambda m: None)
    return configs


@pytest.fixture
def cache_copy(intact_caches, tmp_path, request) -> Config:
    """A config over a private copy of the intact cache of format `request.param`."""
    config = intact_caches[request.param]
    shutil.copytree(config.preprocess_cache_dir, tmp_path / "cache")
    return config.replace(preprocess_cache_dir=str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def stopped_run(tiny_root, tmp_path_factory) -> Config:
    """A training stopped after 2 steps: its checkpoint_dir holds step-000000002 (stage 1, mid-epoch)."""
    config = train_config(tiny_root, tmp_path_factory.mktemp("stopped"))
    assert train(config, ModeOptions(), stop_after_steps=2).exit_code == 130
    return config


@pytest.fixture
def run_copy(stopped_run, tmp_path) -> Config:
    """A config over a private copy of `stopped_run`'s checkpoint_dir (sharing its cache)."""
    shutil.copytree(stopped_run.checkpoint_dir, tmp_path / "ckpt")
    return stopped_run.replace(checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "run"))


@pytest.fixture(scope="session")
def intact_handoff(tiny_root, tmp_path_factory) -> Path:
    """A hand-off model file of a freshly initialised tiny model."""
    return write_handoff(train_config(tiny_root, tmp_path_factory.mktemp("handoff"), max_generation_length=4))


@pytest.fixture
def handoff_copy(intact_handoff, tmp_path) -> Path:
    """A private copy of the intact hand-off file, to damage."""
    return Path(shutil.copy(intact_handoff, tmp_path / "best_model.pt"))
