"""Test factories shared across the suite."""

from __future__ import annotations

from typing import Any

from src.config import Config, preset_config


def tiny_config(**overrides: Any) -> Config:
    """The `tiny` preset with `overrides`: CPU, small dims, local models and data."""
    return preset_config("tiny", **overrides)
