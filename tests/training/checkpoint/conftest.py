"""A committed step checkpoint for the refusal tests to damage."""

from pathlib import Path

import pytest

from tests.factories import tiny_checkpointer, tiny_train_state


@pytest.fixture
def saved(tmp_path) -> Path:
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(5, tiny_train_state(5))
    return tmp_path / "ckpt" / "step-000000005"
