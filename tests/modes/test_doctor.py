import json

from latentbridge.modes import ModeOptions
from latentbridge.modes.doctor import build_report, run
from tests.factories import tiny_config


def _tiny(tmp_path, **overrides):
    root = tmp_path / "tiny"
    return tiny_config(**{"tiny_assets_dir": str(root), "modernbert_model": str(root / "models" / "modernbert"),
                          "gpt2_model": str(root / "models" / "gemma3"), "dataset_name": str(root / "data" / "samsum"),
                          "wikitext_dataset": str(root / "data" / "pretrain" / "wikitext.jsonl"),
                          "arxiv_dataset": str(root / "data" / "pretrain" / "arxiv.jsonl"),
                          "english_pretrain_dataset": str(root / "data" / "pretrain" / "english.jsonl"),
                          "preprocess_cache_dir": str(tmp_path / "cache"), "checkpoint_dir": str(tmp_path / "ckpt"),
                          "output_dir": str(tmp_path / "runs"), **overrides})


def test_tiny_preset_is_ready_before_its_assets_exist(tmp_path, capsys):
    config = _tiny(tmp_path)
    assert run(config, ModeOptions(format="json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    values = {row["item"]: row["value"] for rows in report.values() if isinstance(rows, list) for row in rows
              if isinstance(row, dict)}
    assert values["attention"] == "sdpa" and values["precision"] == "float32"
    assert "built on first use" in values["encoder (modernbert_model)"]
    assert "trainable at most" in values["middle"] and "GiB" in values["total"]
    assert not (tmp_path / "tiny").exists()  # doctor writes nothing


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


def _docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    rows = "".join(json.dumps({"qualname": f"f{i}", "body": f"Body {i}.", "summary_line": f"Does {i}."}) + "\n"
                   for i in range(5))
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(rows)
    return folder


def test_a_missing_column_is_a_problem_naming_the_file_and_the_flag(tmp_path, capsys):
    docs = _docs(tmp_path)
    config = _tiny(tmp_path, dataset_name=str(docs), dataset_input_field="text", dataset_target_field="summary_line")
    assert run(config, ModeOptions(format="table")) == 1
    out = capsys.readouterr().out
    assert "Nothing blocks this run" not in out
    report = build_report(config)
    column = [p for p in report.problems if "dataset_name train" in p]
    assert column and str(docs / "train.jsonl") in column[0] and "--dataset-input-field" in column[0]
    assert len([p for p in report.problems if p.startswith("data / dataset_name")]) == 3  # every split


def test_mapped_columns_pass_and_each_split_is_sampled(tmp_path):
    config = _tiny(tmp_path, dataset_name=str(_docs(tmp_path)), dataset_input_template="{qualname}: {body}",
                   dataset_target_field="summary_line")
    report = build_report(config)
    assert report.problems == []
    rows = {item: value for item, value, _ in report.sections["data"]}
    assert "template '{qualname}: {body}'" in rows["dataset_name test"] and "5 rows sampled" in rows["dataset_name test"]
    assert "not used" in rows["wikitext_dataset"]  # the tiny preset pretrains on the dataset's own texts


def test_a_missing_split_is_a_problem(tmp_path):
    report = build_report(_tiny(tmp_path, dataset_name=str(_docs(tmp_path)), dataset_input_field="body",
                                dataset_target_field="summary_line", validation_split="dev2"))
    assert any("dataset_name dev2" in p and "no split 'dev2'" in p for p in report.problems)
