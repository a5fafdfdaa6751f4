import json

import pytest

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
    assert run(config, ModeOptions(format="json")).exit_code == 0
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
    assert run(_tiny(tmp_path), ModeOptions(format="table")).exit_code == 0
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


def _base_on_published_configs(tmp_path, **overrides):
    return tiny_config().replace(**{name: value for name, value in (
        ("modernbert_model", "answerdotai/ModernBERT-base"), ("gpt2_model", "google/gemma-3-270m-it"),
        ("modernbert_hidden_dim", 768), ("gpt2_hidden_dim", 640), ("latent_dim", 256), ("latent_seq_len", 8),
        ("prefix_len", 50), ("max_seq_len", 512), ("max_target_len", 256), ("batch_size", 30),
        ("tiny_assets_dir", None), ("checkpoint_dir", str(tmp_path / "ckpt")), *overrides.items())})


def test_memory_table_estimates_every_planned_stage(tmp_path):
    rows = {item: value for item, value, _ in build_report(_base_on_published_configs(tmp_path)).sections["memory"]}
    gib = {stage: float(rows[f"{stage} (batch 30)"].split()[0])
           for stage in ("pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter")}
    assert gib["pretrain_adapter"] > gib["pretrain_middle"]  # the decoder's activations and logits
    assert rows["total"].startswith(f"{max(gib.values()):.2f} GiB peak (pretrain_adapter; fp32")
    assert "  pretrain_adapter: target logits (one chunk, recomputed in backward)" in rows


def test_memory_table_covers_the_encoder_training_phase(tmp_path):
    config = _base_on_published_configs(tmp_path, training_phase="phase2", cache_store_text=True)
    rows = {item: value for item, value, _ in build_report(config).sections["memory"]}
    assert "train_encoder (batch 30)" in rows and "  train_encoder: encoder activations (trained layers)" in rows


def test_memory_gb_lists_which_settings_fit(tmp_path):
    config = _base_on_published_configs(tmp_path, device="cuda")
    fits = build_report(config, memory_gb=8).sections["fits in 8 GiB"]
    assert len(fits) == 6  # fp32, bf16, bf16 with bf16 weights (flash-attn) x checkpointing on/off
    largest = {item: int(value.split(";")[0].split()[-1]) for item, value, _ in fits}
    assert largest["bf16, frozen weights bf16 (flash-attn), checkpointing on, GPU"] >= \
        largest["fp32, checkpointing on, GPU"] >= largest["fp32, checkpointing off, GPU"]
    assert all("configured batch sizes" in value for _, value, _ in fits)


def test_memory_gb_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from latentbridge import cli

    result = CliRunner().invoke(cli.app, ["--mode", "doctor", "--preset", "tiny", "--memory-gb", "24",
                                                  "--format", "json", "--checkpoint-dir", str(tmp_path / "ck")])
    report = json.loads(result.stdout)
    assert [row["value"].startswith("largest batch 128") for row in report["fits in 24 GiB"]] == [True] * 6


@pytest.mark.parametrize("name,hidden,total", [("google/gemma-3-1b-it", 1152, "999.89M"),
                                               ("google/gemma-3-4b-it", 2560, "3880.26M"),
                                               ("google/gemma-3-27b-pt", 5376, "27009.35M")])
def test_bigger_gemma3_decoders_get_exact_counts_and_memory(tmp_path, name, hidden, total):
    report = build_report(_base_on_published_configs(tmp_path, gpt2_model=name, gpt2_hidden_dim=hidden))
    params = {item: value for item, value, _ in report.sections["parameters"]}
    assert params["decoder"].startswith(f"{total} total")
    memory = {item: value for item, value, _ in report.sections["memory"]}
    assert float(memory["finetune_adapter (batch 30)"].split()[0]) > float(memory["finetune_middle (batch 30)"].split()[0])
    assert not any(p.startswith("models / gpt2_hidden_dim") for p in report.problems)
    wrong = build_report(_base_on_published_configs(tmp_path, gpt2_model=name, gpt2_hidden_dim=640))
    assert any(p.startswith("models / gpt2_hidden_dim") and f"has {hidden}" in p for p in wrong.problems)


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
    assert run(config, ModeOptions(format="table")).exit_code == 1
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


def test_missing_input_and_target_columns_are_reported_in_one_run(tmp_path):
    report = build_report(_tiny(tmp_path, dataset_name=str(_docs(tmp_path)), dataset_input_field="text",
                                dataset_target_field="summary"))
    train = next(p for p in report.problems if "dataset_name train" in p)
    assert "--dataset-input-field" in train and "--dataset-target-field" in train


def test_an_empty_split_is_said_to_be_empty(tmp_path):
    docs = _docs(tmp_path)
    (docs / "validation.jsonl").write_text("")
    report = build_report(_tiny(tmp_path, dataset_name=str(docs), dataset_input_field="body",
                                dataset_target_field="summary_line"))
    empty = [p for p in report.problems if "dataset_name validation" in p]
    assert empty and "is empty" in empty[0] and "columns are []" not in empty[0]


def test_own_data_lists_the_real_folder_of_its_tiny_models(tmp_path):
    from latentbridge import recipe

    config = _tiny(tmp_path, dataset_name=str(_docs(tmp_path)), dataset_input_field="body",
                   dataset_target_field="summary_line")
    rows = {item: value for item, value, _ in build_report(config).sections["models"]}
    folder = recipe.corpus_models_folder(config)
    assert "/corpora/" in str(folder)
    assert str(folder / "models" / "modernbert") in rows["encoder (modernbert_model)"]
    assert str(folder / "models" / "gemma3") in rows["decoder (gpt2_model)"]


def test_table_at_80_columns_keeps_every_value(tmp_path):
    """Long items (the memory breakdown) wrap instead of squeezing the value column out."""
    import io

    from rich.console import Console

    from latentbridge.modes.doctor import print_report

    report = build_report(_tiny(tmp_path))
    out = io.StringIO()
    print_report(report, Console(file=out, width=80, color_system=None))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    stage_rows = [line for line in lines if "(batch " in line]
    assert len(stage_rows) == len([item for item, _, _ in report.sections["memory"] if "(batch " in item])
    assert all("GiB" in line for line in stage_rows)
    assert any("free disk" in line and "GiB at" in line for line in lines)
