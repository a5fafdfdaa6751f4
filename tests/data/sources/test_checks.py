"""The doctor's checks of the data, without loading it."""

from __future__ import annotations

from latentbridge.data.sources import Columns, DataSpec, check_dialogue_data

from tests.data.builders import DOCS, docs_folder


def test_checks_sample_rows_and_report_columns_without_loading(tmp_path):
    folder = docs_folder(tmp_path, DOCS + [{"qualname": "x", "body": "", "summary_line": "y"}])
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    checks = check_dialogue_data(spec, ["train", "validation", "test"], sample=100)
    assert [(c.name, c.sampled, c.without_text, c.problem) for c in checks] == [
        ("train", 7, 1, None), ("validation", 7, 1, None), ("test", 7, 1, None)]
    assert "'body'" in checks[0].columns and not list(tmp_path.rglob("*.arrow"))  # streamed: nothing cached
    bad = check_dialogue_data(spec.__class__(**{**spec.__dict__, "test_split": "nope"}), ["nope"])
    assert "no split 'nope'" in bad[0].problem
