"""Fixtures of the data tests: a WordLevel tokenizer trained on the bundled corpus, the corpus, a fake encoder."""

from pathlib import Path

import pytest

from latentbridge.data.corpus import write_corpus
from tests.factories import FakeEncoder, make_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, seed=0)
    return root


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory) -> Path:
    """The bundled corpus cut down (64/16/16 dialogues, 100 documents a source) for fast cache tests."""
    root = tmp_path_factory.mktemp("small_corpus")
    write_corpus(root, seed=0)
    sizes = {"train": 64, "validation": 16, "test": 16, "wikitext": 100, "arxiv": 100, "english": 100}
    for path in root.rglob("*.jsonl"):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: sizes[path.stem]]))
    return root


@pytest.fixture()
def fake_encoder(tokenizer):
    return FakeEncoder(len(tokenizer))
