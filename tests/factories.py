"""Test factories shared across the suite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentbridge.config import Config, preset_config

if TYPE_CHECKING:
    from latentbridge.training.checkpoint import AsyncCheckpointer, ConfigFingerprint, TrainState

# The checkpoint factories import torch inside: the config and CLI tests use this module without it.


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


def tiny_fingerprint() -> ConfigFingerprint:
    """The fingerprint the checkpoint tests save under."""
    from latentbridge.training.checkpoint import config_fingerprint

    return config_fingerprint({"latent_dim": 8, "prefix_len": 2})


def tiny_train_state(step: int = 0, stage: str = "pretrain_middle") -> TrainState:
    """A TrainState around a seeded nn.Linear(4, 3): a small model whose weights differ per step."""
    import torch

    from latentbridge.training.checkpoint import TrainState

    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    return TrainState(stage=stage, model=model.state_dict(), loop={"epoch": 0, "batch": step}, config={"latent_dim": 8})


def tiny_checkpointer(root: Path, **kw: Any) -> AsyncCheckpointer:
    """An AsyncCheckpointer writing to `root`/ckpt under tiny_fingerprint() unless `fingerprint` is given."""
    from latentbridge.training.checkpoint import AsyncCheckpointer

    kw.setdefault("fingerprint", tiny_fingerprint())
    return AsyncCheckpointer(root / "ckpt", **kw)


def names_in(directory: Path) -> list[str]:
    """The sorted names of the entries in `directory`."""
    return sorted(p.name for p in directory.iterdir())
