"""`--mode eval` end to end on a hand-off file of a freshly initialised tiny model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from latentbridge import cli
from latentbridge.evaluation.rouge import ROUGE_TYPES
from tests.factories import assets_config, write_handoff

APP = cli.app


@pytest.fixture(scope="module")
def quick_handoff(tiny_root, tmp_path_factory):
    """A hand-off whose config makes the direct baseline short: 32 training pairs, 1 epoch of batch 16."""
    work = tmp_path_factory.mktemp("eval")
    config = assets_config(tiny_root, checkpoint_dir=str(work / "ck"), output_dir=str(work / "runs"),
                           max_generation_length=4, batch_size=50, max_train_samples=32,
                           finetune_adapter_batch_size=16, finetune_adapter_epochs=1)
    return config, write_handoff(config)


@pytest.fixture(scope="module")
def report(quick_handoff, tmp_path_factory):
    config, path = quick_handoff
    out = tmp_path_factory.mktemp("report") / "eval.json"
    result = CliRunner().invoke(APP, ["--mode", "eval", "--preset", "tiny", "--checkpoint", str(path), "--baselines",
                                      "--split", "validation", "--output-file", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.stdout, out.with_suffix(".md").read_text(), result.stderr


def test_report_names_split_checkpoint_scorer_and_sampling(report, quick_handoff):
    data = report[0]
    assert data["report"] == "latentbridge-eval" and data["split"] == "validation" and data["n_examples"] == 200
    assert data["checkpoint"]["path"] == str(quick_handoff[1])
    assert "rouge-score" in data["scorer"] and "use_stemmer=True" in data["scorer"]
    assert data["sampling"]["max_generation_length"] == 4


def test_report_has_the_three_systems_side_by_side_and_the_ceiling(report):
    systems = report[0]["systems"]
    assert {"latent", "reconstruction", "constant", "direct"} <= set(systems)
    for scores in systems.values():
        assert all(0.0 <= scores[t] <= 1.0 for t in ROUGE_TYPES)
    assert systems["constant"]["pool_size"] == 32  # every one of the 32 training summaries
    assert systems["direct"]["steps"] == 2 and systems["direct"]["train_pairs"] == 32


def test_a_chat_templated_decoder_gets_the_zero_shot_baseline(report):
    data = report[0]  # the tiny decoder's tokenizer has a Gemma chat template
    assert data["systems"]["zero_shot"]["trains"].startswith("nothing")
    assert all(0.0 <= data["systems"]["zero_shot"][t] <= 1.0 for t in ROUGE_TYPES)
    assert all("zero_shot" in sample for sample in data["samples"])


def test_report_has_latent_metrics_and_prefix_use(report):
    data = report[0]
    lm = data["latent_metrics"]
    assert {"mse", "cosine", "retrieval_top1", "retrieval_chance", "length_accuracy"} <= set(lm)
    assert lm["n_examples"] == 200 and lm["retrieval_chance"] == pytest.approx(1 / 50)
    for key in ("pipeline", "gold"):
        use = data["prefix_use"][key]
        assert use["gap"] == pytest.approx(use["loss_shuffled_prefix"] - use["loss_true_prefix"])
    assert len(data["samples"]) == 5 and {"input", "reference", "latent", "constant", "direct"} <= set(data["samples"][0])


def test_terminal_shows_the_tables(report):
    out = report[1]
    assert "ROUGE-L" in out and "constant baseline" in out and "direct baseline" in out and "retrieval" in out


def test_default_report_goes_into_the_run_folder(tiny_root, tmp_path):
    config = assets_config(tiny_root, checkpoint_dir=str(tmp_path / "ck"), output_dir=str(tmp_path / "runs"),
                           max_generation_length=1, batch_size=100)
    write_handoff(config)
    from latentbridge.evaluation.trained_model import load_handoff
    from latentbridge.modes import ModeOptions, eval as eval_mode

    assert eval_mode.run(config, ModeOptions(split="test")).exit_code == 0
    assert json.loads((tmp_path / "runs" / "eval_test.json").read_text())["split"] == "test"
    assert load_handoff(config).path == tmp_path / "ck" / "best_model.pt"


def test_unknown_split_exits_2(quick_handoff):
    _, path = quick_handoff
    result = CliRunner().invoke(APP, ["--mode", "eval", "--preset", "tiny", "--checkpoint", str(path),
                                      "--split", "nosuchsplit"], catch_exceptions=False)
    assert result.exit_code == 2 and "nosuchsplit" in result.stderr


def test_missing_checkpoint_exits_2(tmp_path):
    result = CliRunner().invoke(APP, ["--mode", "eval", "--preset", "tiny", "--checkpoint-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 2 and "No trained model" in result.stderr


def test_markdown_report_beside_the_json_holds_the_tables_and_the_samples(report):
    data, _, markdown, _ = report
    assert markdown.startswith(f"# Evaluation: {data['dataset']} / validation (n = 200)")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown.splitlines() if line.startswith("| ")}
    latent = data["systems"]["latent"]
    assert rows["latent pipeline"] == ("| latent pipeline | " + " | ".join(f"{100 * latent[t]:.2f}" for t in ROUGE_TYPES)
                                       + " |")
    assert {"constant baseline", "direct baseline (no bottleneck)", "cosine", "predicted (middle)"} <= set(rows)
    assert f"{data['prefix_use']['pipeline']['gap']:.3f}" in rows["predicted (middle)"]
    sample = data["samples"][0]
    assert "| id | input (dialogue) | reference (summary) | latent |" in markdown  # named after the trained columns
    assert sample["reference"].replace("|", "\\|") in markdown


def test_eval_max_samples_from_the_command_line_caps_the_dialogues_scored(quick_handoff, tmp_path):
    config, path = quick_handoff
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(APP, ["--mode", "eval", "--preset", "tiny", "--checkpoint", str(path),
                                      "--eval-max-samples", "7", "--output-file", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["n_examples"] == 7 and data["latent_metrics"]["n_examples"] == 7


def test_one_verdict_line_in_the_report_the_markdown_and_on_the_terminal(report):
    data, out, markdown, _ = report
    systems = data["systems"]
    latent, constant, direct = (100 * systems[name]["rougeL"] for name in ("latent", "constant", "direct"))
    line = data["verdict"]
    assert line.startswith(f"Verdict (ROUGE-L F1 x 100): the latent pipeline ({latent:.2f})")
    for name, score in (("constant", constant), ("direct", direct)):
        word = "beats" if latent > score else "loses to"
        assert f"{word} the {name} baseline ({score:.2f}) by {abs(latent - score):.2f} points" in line
    assert f"**{line}**" in markdown
    assert " ".join(line.split()) in " ".join(out.split())


def test_the_report_names_the_trained_columns(report):
    assert report[0]["columns"] == {"input": "dialogue", "target": "summary"}


def test_the_gold_latents_row_is_explained(report):
    data, _, markdown, _ = report
    note = next(n for n in data["notes"] if n.startswith("gold latents:"))
    assert "ceiling of the latent path only when the adapter trained on gold latents" in note
    assert note in markdown


def test_direct_baseline_training_shows_progress_lines(report):
    err = report[3]
    steps = report[0]["systems"]["direct"]["steps"]
    assert "direct baseline: fine-tuning a fresh copy of the decoder on 32 pairs for 2 steps" in err
    lines = [line for line in err.splitlines() if line.startswith("direct baseline: training ")]
    assert lines[0].startswith("direct baseline: training 0/2") and lines[-1].startswith(f"direct baseline: training {steps}/{steps}")


def test_tables_at_80_columns_keep_every_number(report):
    import io

    from rich.console import Console

    from latentbridge.evaluation.report import render_report

    data = report[0]
    out = io.StringIO()
    render_report(data, Console(file=out, width=80, color_system=None))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    for name, scores in data["systems"].items():
        assert any(f"{100 * scores['rougeLsum']:.2f}" in line for line in lines), name
