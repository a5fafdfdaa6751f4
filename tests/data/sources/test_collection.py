"""The texts tiny models are trained on."""

from __future__ import annotations

import json

from latentbridge.data.sources import Columns, DataSpec, training_texts

from tests.data.builders import DOCS, docs_folder


def test_training_texts_are_the_training_inputs_and_targets_only(tmp_path):
    folder = docs_folder(tmp_path)
    (folder / "test.jsonl").write_text(json.dumps({**DOCS[0], "body": "A test body never seen."}) + "\n")
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    texts = training_texts(spec, limit=100)
    assert texts[:2] == [DOCS[0]["body"], DOCS[0]["summary_line"]] and len(texts) == 12
    assert training_texts(spec, limit=5) == texts[:5]
