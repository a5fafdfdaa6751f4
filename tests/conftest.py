"""Suite-wide fixtures: one torch thread, and the tiny assets (corpus, tokenizer, models) built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
# Subprocesses (`python -c ...`, torchrun) import this checkout's package, not another installed copy.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny ops only lose from threads: on a busy 2-core machine two threads made them 10-20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset's bundled corpus and models (latentbridge.assets), built once per test session."""
    from latentbridge.assets import ensure_tiny_assets

    root = tmp_path_factory.mktemp("tiny")
    ensure_tiny_assets(root, seed=0)
    return root


@pytest.fixture(scope="session")
def small_root(tiny_root: Path) -> Path:
    """The shared tiny assets plus a cut-down corpus beside them, under `small/` (factories.small_corpus_config)."""
    root = tiny_root
    # a cut-down copy of the corpus keeps each build to seconds: 96/24/24 dialogues, 120 documents a source
    sizes = {"train": 96, "validation": 24, "test": 24, "wikitext": 120, "arxiv": 120, "english": 120}
    for path in (root / "data").rglob("*.jsonl"):
        small = root / "small" / path.relative_to(root / "data")
        small.parent.mkdir(parents=True, exist_ok=True)
        small.write_text("".join(path.read_text().splitlines(keepends=True)[: sizes[path.stem]]))
    return root


@pytest.fixture
def legacy_files(tmp_path: Path) -> Path:
    """A copy of tests/golden/legacy_03780ed: a checkpoint, a model file, a cache and the backbone folder
    they fingerprint, written by latentbridge at 03780ed (before issue 10), for tests to load or damage."""
    import shutil

    return Path(shutil.copytree(Path(__file__).parent / "golden" / "legacy_03780ed", tmp_path / "legacy"))
