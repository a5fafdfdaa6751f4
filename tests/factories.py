"""Test factories shared across the suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentbridge.config import Config, preset_config


def tiny_config(**overrides: Any) -> Config:
    """The `tiny` preset with `overrides`: CPU, small dims, local models and data."""
    return preset_config("tiny", **overrides)


def assets_config(root: Path, **overrides: Any) -> Config:
    """The tiny preset pointed at tiny assets under `root` (absolute paths: tests never depend on the cwd)."""
    paths = {
        "tiny_assets_dir": str(root), "modernbert_model": str(root / "models" / "modernbert"),
        "gpt2_model": str(root / "models" / "gemma3"), "dataset_name": str(root / "data" / "samsum"),
        "wikitext_dataset": str(root / "data" / "pretrain" / "wikitext.jsonl"),
        "arxiv_dataset": str(root / "data" / "pretrain" / "arxiv.jsonl"),
        "english_pretrain_dataset": str(root / "data" / "pretrain" / "english.jsonl"),
    }
    return tiny_config(**{**paths, **overrides})
