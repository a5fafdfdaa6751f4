"""Fixtures of the model tests: the tiny assets (built once per session) and a fresh tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentbridge.assets import TinyAssets, ensure_tiny_assets
from latentbridge.models.bridge import LatentBridge
from tests.factories import make_model


@pytest.fixture(scope="session")
def tiny_assets(tiny_root: Path) -> TinyAssets:
    return ensure_tiny_assets(tiny_root, seed=0)  # built once by tests/conftest.py: returns the paths


@pytest.fixture()
def model(tiny_assets: TinyAssets) -> LatentBridge:
    return make_model(tiny_assets)
