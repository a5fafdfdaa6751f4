"""Rows numbered by row (Parquet, hub); an unreachable hub name fails fast with a hint."""

from __future__ import annotations

import pytest

from latentbridge.data.rows import open_hub_dataset
from latentbridge.data.sources import DataSpec, load_dialogue_split
from latentbridge.errors import UserError


def test_parquet_and_hub_rows_are_numbered_by_row(tmp_path):
    import datasets
    import pandas as pd

    from latentbridge.data.rows import HubRows, Skips

    rows = {"dialogue": ["A: hi", None, "A: bye", "  "], "summary": ["A greets.", "x", "A leaves.", "y"]}
    path = tmp_path / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    out = load_dialogue_split(DataSpec(str(path)), "train")
    assert len(out.examples) == 2 and out.skipped.describe() == [
        f"{path}: 2 missing or empty text (rows 2, 4)"]
    hub = HubRows(datasets.Dataset.from_dict(rows), "org/data (train)")
    assert hub.count() == 4 and hub.columns() == ["dialogue", "summary"]
    assert [r.line for r in hub.rows(Skips())] == [1, 2, 3, 4]


def test_unreachable_hub_name_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(UserError, match=r"dataset_name.*knkarthick/samsum.*--preset tiny"):
        open_hub_dataset("knkarthick/samsum", "dataset_name", hf_cache_dir=str(tmp_path / "hf"))
