"""Shared by the training tests: one thread for tiny models, tiny assets built once per session."""

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Ops this small only lose from threads (many times slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The tiny preset's models and corpus (src.assets), built once."""
    from src.assets import ensure_tiny_assets

    root = tmp_path_factory.mktemp("tiny_training")
    ensure_tiny_assets(root, seed=0)
    return root
