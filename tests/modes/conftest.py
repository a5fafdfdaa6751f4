"""Fixtures of the mode tests: a hand-off model file written from a fresh tiny model, once per session."""

from __future__ import annotations

import pytest

from tests.factories import Handoff, assets_config, write_handoff


@pytest.fixture(scope="session")
def handoff(tiny_root, tmp_path_factory) -> Handoff:
    work = tmp_path_factory.mktemp("handoff")
    config = assets_config(tiny_root, checkpoint_dir=str(work / "ck"), output_dir=str(work / "runs"),
                           max_generation_length=8, batch_size=16)
    return Handoff(config, write_handoff(config))
