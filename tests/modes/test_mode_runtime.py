"""Each mode resolves the Runtime once at its start and logs its notes once (models/runtime.py)."""

from __future__ import annotations

import logging

import pytest

from latentbridge.evaluation.trained_model import load_handoff
from latentbridge.models import runtime
from latentbridge.modes import ModeOptions
from latentbridge.modes import preprocess, train
from tests.factories import train_config

BF16_ON_CPU = "precision: bf16 requested but the device is cpu; using fp32"


@pytest.fixture
def resolutions(monkeypatch) -> list[str]:
    """The devices resolve_runtime was asked to resolve, one entry per resolution from the Config's device."""
    asked: list[str] = []
    resolve_device = runtime.resolve_device

    def counted(requested: str):
        asked.append(requested)
        return resolve_device(requested)

    monkeypatch.setattr(runtime, "resolve_device", counted)
    return asked


def _notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "latentbridge.models"]


@pytest.mark.parametrize("mode", ["preprocess", "train"])
def test_a_mode_resolves_the_runtime_once_and_says_each_note_once(mode, tiny_root, tmp_path, resolutions, caplog):
    config = train_config(tiny_root, tmp_path, use_bf16=True)
    with caplog.at_level(logging.WARNING, logger="latentbridge.models"):
        if mode == "preprocess":
            assert preprocess.run(config, ModeOptions()).exit_code == 0
        else:
            assert train.run(config, ModeOptions(), stop_after_steps=1).exit_code == 130  # cache, model, one step
    assert resolutions == [config.device]
    assert _notes(caplog) == [BF16_ON_CPU]


def test_loading_a_trained_model_resolves_its_runtime_once(handoff, resolutions, caplog):
    with caplog.at_level(logging.WARNING, logger="latentbridge.models"):
        model = load_handoff(handoff.config.replace(use_bf16=True))  # a request the trained model does not make
    assert resolutions == [handoff.config.device] and _notes(caplog) == []
    assert model.model.spec.runtime.resolved.precision == "fp32"
