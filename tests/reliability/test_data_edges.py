"""Rows no parser or tokenizer can take are skipped and named by file and line, never a traceback: a
JSON-escaped lone surrogate, a line of 200,000 nested `[`; skipped task texts say whether the input or the
target was too short, and cut texts are named by line. A backbone folder with only pickled weights is refused."""

from __future__ import annotations

import json

import pytest

from latentbridge.data.sources import Columns, DataSpec, PretrainSource, load_dialogue_split, load_pretrain_source
from latentbridge.errors import UserError

GOOD = {"dialogue": "Anna: lunch at 1? Ben: sure, see you there.", "summary": "Anna and Ben meet for lunch."}


def _lines(*rows: bytes) -> bytes:
    return b"".join(row + b"\n" for row in rows)


def test_a_lone_surrogate_and_deep_nesting_are_skipped_by_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(_lines(good, b'{"dialogue": "A: \\ud800 hi", "summary": "x"}', b"[" * 200_000,
                            b'{"dialogue": {"nested": ["\\udfff"]}, "summary": "y"}', good))
    out = load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    assert len(out.examples) == 2
    assert out.skipped.where[str(path)] == {"lone_surrogate": {"count": 2, "unit": "line", "first": [2, 4]},
                                            "nested_too_deep": {"count": 1, "unit": "line", "first": [3]}}
    assert "2 lone surrogate escape" in out.skipped.describe()[0]


def test_a_lone_surrogate_in_a_json_array_is_skipped_by_item(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([GOOD, {"dialogue": "A: \ud800", "summary": "x"}, GOOD]))
    out = load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    assert len(out.examples) == 2 and out.skipped.where[str(path)]["lone_surrogate"]["first"] == [2]


def test_a_json_array_nested_too_deep_is_a_user_error(tmp_path):
    path = tmp_path / "train.json"
    path.write_text("[" * 200_000)
    with pytest.raises(UserError, match="nested too deeply"):
        load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train").examples


def test_skipped_task_texts_name_the_file_line_and_whether_input_or_target(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    rows = [{"body": "One two three. Four five six.", "summary_line": "Seven eight. Nine ten."},
            {"body": "Too short", "summary_line": "Eleven twelve. Thirteen fourteen."},
            {"body": "Fifteen sixteen. Seventeen eighteen.", "summary_line": "Short"}]
    for split in ("train", "validation"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DataSpec(str(folder), hf_cache_dir=str(tmp_path / "hf"),
                    columns=Columns(input_field="body", target_field="summary_line"))
    out = load_pretrain_source(spec, PretrainSource("dataset", spec.dataset, "dataset_name", task_texts=True))
    stream = out["train"]
    list(stream)
    train = str(folder / "train.jsonl")
    assert stream.skipped.where == {f"{train} (input)": {"too_short_to_split": {"count": 1, "unit": "line",
                                                                                "first": [2]}},
                                    f"{train} (target)": {"too_short_to_split": {"count": 1, "unit": "line",
                                                                                 "first": [3]}}}


def test_a_backbone_with_only_pickled_weights_is_refused_naming_the_file(tmp_path):
    from transformers import AutoModel

    from latentbridge.models.pretrained import load_pretrained

    folder = tmp_path / "backbone"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UserError, match=r"modernbert_model: .*pickled pytorch_model.bin.*safetensors"):
        load_pretrained(AutoModel, str(folder), "modernbert_model", "encoder")


def test_long_and_unicode_paths_are_read_and_named_in_full(tmp_path):
    from typer.testing import CliRunner

    from latentbridge import cli
    from latentbridge.config_sources import resolve_config

    folder = tmp_path.joinpath(*(["données_ü_日本_" + "x" * 100] * 4))  # > 400 characters, no part over 255 bytes
    folder.mkdir(parents=True)
    path = folder / "train.jsonl"
    path.write_bytes(_lines(json.dumps(GOOD, ensure_ascii=False).encode(), b"{broken"))
    out = load_dialogue_split(DataSpec(str(path), hf_cache_dir=str(tmp_path / "hf")), "train")
    assert len(out.examples) == 1 and out.skipped.describe() == [f"{path}: 1 malformed JSON (line 2)"]
    saved = folder / "résumé.yaml"
    result = CliRunner().invoke(cli.app, ["--mode", "config", "--format", "json", "--seed", "7",
                                                      "--save-config", str(saved)])
    assert result.exit_code == 0, result.output
    assert resolve_config(None, [str(saved)], environ={}).config.seed == 7
