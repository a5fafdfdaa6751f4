"""Choosing experiment trackers (training/tracking.py); the files they write are read back in test_trainer.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentbridge.errors import UserError
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run
from latentbridge.training import tracking
from latentbridge.training.tracking import resolve_trackers
from tests.factories import train_config

def test_a_missing_tracker_is_a_user_error_naming_its_package(monkeypatch):
    monkeypatch.setitem(tracking._INSTALLED, "wandb", lambda: False)
    with pytest.raises(UserError, match=r"report_to is wandb.*pip install wandb==.*--report-to none"):
        resolve_trackers("wandb")
    monkeypatch.setattr(tracking, "_INSTALLED", {name: (lambda: False) for name in tracking.TRACKERS})
    with pytest.raises(UserError, match="none of tensorboard, wandb, mlflow is installed.*requirements-trackers"):
        resolve_trackers("all")
    assert resolve_trackers("none") == []


def test_train_mode_refuses_a_missing_tracker_before_any_work(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setitem(tracking._INSTALLED, "mlflow", lambda: False)
    c = train_config(tiny_root, tmp_path, report_to="mlflow")
    with pytest.raises(UserError, match="mlflow-skinny"):
        run(c, ModeOptions())
    assert not Path(c.preprocess_cache_dir).exists()
