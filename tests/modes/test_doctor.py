import json

from latentbridge.modes import ModeOptions
from latentbridge.modes.doctor import build_report, run
from tests.factories import tiny_config


def _tiny(tmp_path, **overrides):
    root = tmp_path / "tiny"
    return tiny_config(tiny_assets_dir=str(root), modernbert_model=str(root / "models" / "modernbert"),
                       gpt2_model=str(root / "models" / "gemma3"), dataset_name=str(root / "data" / "samsum"),
                       wikitext_dataset=str(root / "data" / "pretrain" / "wikitext.jsonl"),
                       arxiv_dataset=str(root / "data" / "pretrain" / "arxiv.jsonl"),
                       english_pretrain_dataset=str(root / "data" / "pretrain" / "english.jsonl"),
                       preprocess_cache_dir=str(tmp_path / "cache"), checkpoint_dir=str(tmp_path / "ckpt"),
                       output_dir=str(tmp_path / "runs"), **overrides)


def test_tiny_preset_is_ready_before_its_assets_exist(tmp_path, capsys):
    config = _tiny(tmp_path)
    assert run(config, ModeOptions(format="json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    values = {row["item"]: row["value"] for rows in report.values() if isinstance(rows, list) for row in rows
              if isinstance(row, dict)}
    assert values["attention"] == "sdpa"
    assert values["precision"] == "fp32 (requested fp32: use_bf16=False, use_fp16=False)"
    assert "built on first use" in values["encoder (modernbert_model)"]
    assert "trainable at most" in values["middle"] and "GiB" in values["total"]
    assert not (tmp_path / "tiny").exists()  # doctor writes nothing


def test_precision_shows_what_the_device_gives_next_to_the_request(tmp_path):
    rows = dict((item, value) for item, value, _ in build_report(_tiny(tmp_path, use_bf16=True)).sections["runtime"])
    assert rows["precision"].startswith("fp32 (requested bf16: use_bf16=True, use_fp16=False)")
    assert "the device is cpu" in rows["precision"]


def test_table_output_names_every_section(tmp_path, capsys):
    assert run(_tiny(tmp_path), ModeOptions(format="table")) == 0
    out = capsys.readouterr().out
    for section in ("environment", "runtime", "parameters", "memory", "storage", "data", "Nothing blocks this run"):
        assert section in out


def test_base_config_counts_published_sizes_and_reports_what_is_missing(tmp_path):
    config = tiny_config().replace(**{name: value for name, value in (
        ("modernbert_model", "answerdotai/ModernBERT-base"), ("gpt2_model", "google/gemma-3-270m-it"),
        ("modernbert_hidden_dim", 768), ("gpt2_hidden_dim", 640), ("tiny_assets_dir", None),
        ("dataset_name", str(tmp_path / "nowhere")), ("checkpoint_dir", str(tmp_path / "ckpt")))})
    report = build_report(config)
    params = {item: value for item, value, _ in report.sections["parameters"]}
    assert params["encoder"].startswith("149.01M") and params["decoder"].startswith("268.10M")
    assert any("modernbert_model" in p and "local folder" in p for p in report.problems)
    assert any("dataset_name" in p for p in report.problems)


def test_hidden_dim_mismatch_is_a_problem(tmp_path):
    report = build_report(_tiny(tmp_path, gpt2_hidden_dim=32))
    assert any(p.startswith("models / gpt2_hidden_dim") for p in report.problems)


def test_pretrain_mix_sources_are_checked_in_place_of_the_three_datasets(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "One. Two."}\n')
    report = build_report(_tiny(tmp_path, pretrain_mix=f"dataset:1,{docs}:2,org/not-here:1"))
    rows = {item: (value, status) for item, value, status in report.sections["data"]}
    assert "wikitext_dataset" not in rows and rows["pretrain_mix: docs"] == (f"{docs}: local path (weight 2)", "ok")
    assert rows["pretrain_mix: dataset"][1] == "ok"
    assert report.problems == ["data / pretrain_mix: not-here: org/not-here: not on this machine; needs a hub "
                               "connection (none here) or a local copy"]
    missing = build_report(_tiny(tmp_path, pretrain_mix=str(tmp_path / "gone.yaml")))
    assert any("pretrain_mix" in p and "gone.yaml does not exist" in p for p in missing.problems)
