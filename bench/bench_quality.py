"""Quality of the latent pipeline: train with a preset, evaluate with the baselines, on the bundled task or on
real text (the docstring pairs of bench/build_real_corpus.py, the man page pairs of bench/build_man_corpus.py).

    python bench/bench_quality.py --run-dir /tmp/q                        # train tiny, then eval --baselines
    python bench/bench_quality.py --run-dir /tmp/q --skip-train           # evaluate an existing run again
    python bench/bench_quality.py --run-dir /tmp/q2 -- --decoder-unfrozen-layers 1   # a variant (flags after --)
    python bench/bench_quality.py --run-dir /tmp/r --real cache/real/docstrings      # a real-text corpus
    python bench/bench_quality.py --run-dir /tmp/m --real cache/real/manpages

Writes RUN_DIR/eval.json (the eval report) and prints the markdown rows used in docs/benchmarks.md
(## Quality), the report's five samples, the wall times (whole train and eval, and each stage's from
metrics.jsonl) and each stage's trainable parameter count (the run's summary.json), and with --real: the
rule rows (the input's first sentence, its first 12 words) scored on the same test pairs as the eval, and how
many test inputs and targets exceed max_seq_len and max_target_len under the trained model's tokenizers.
Training and evaluation run through main.py exactly as a user runs them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# the docstring corpus's columns; a corpus whose README.md manifest names "columns" (Config field -> value) uses those
DOCSTRING_COLUMNS = {"dataset_input_template": "{qualname}\n{body}", "dataset_target_field": "summary_line"}
LABELS = {"latent": "latent pipeline", "reconstruction": "gold summary latents -> adapter -> decoder",
          "constant": "constant baseline", "direct": "direct baseline (decoder fine-tuned on dialogue text)"}


RULE_WORDS = 12
SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def main_py(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def asset_flags(root: Path) -> list[str]:
    """Point every model and data field at `root` and never rebuild it (tiny_assets_dir none)."""
    pretrain = root / "data" / "pretrain"
    return ["--tiny-assets-dir", "none", "--modernbert-model", str(root / "models" / "modernbert"),
            "--gpt2-model", str(root / "models" / "gemma3"), "--dataset-name", str(root / "data" / "samsum"),
            "--wikitext-dataset", str(pretrain / "wikitext.jsonl"), "--arxiv-dataset", str(pretrain / "arxiv.jsonl"),
            "--english-pretrain-dataset", str(pretrain / "english.jsonl"),
            "--preprocess-cache-dir", str(root / "preprocessed")]


def column_flags(corpus: Path) -> list[str]:
    """The column flags of a corpus folder (`corpus_columns`)."""
    return [flag for field, value in corpus_columns(corpus).items() for flag in ("--" + field.replace("_", "-"), value)]


def corpus_columns(corpus: Path) -> dict[str, str]:
    """The Config column fields of a corpus folder: its README.md manifest's "columns", else the docstring
    corpus's."""
    readme = corpus / "README.md"
    manifest = readme.read_text(encoding="utf-8").split("```json\n", 1) if readme.is_file() else []
    return json.loads(manifest[1].split("\n```", 1)[0]).get("columns", DOCSTRING_COLUMNS) if len(manifest) == 2 \
        else DOCSTRING_COLUMNS


def first_sentence(text: str) -> str:
    """Up to the first sentence end followed by whitespace (the whole text when there is none)."""
    return SENTENCE_END.split(" ".join(text.split()), 1)[0]


def first_words(text: str, n: int = RULE_WORDS) -> str:
    return " ".join(text.split()[:n])


def rule_scores(corpus: Path, n: int, split: str = "test") -> dict[str, dict[str, float]]:
    """ROUGE of the two rules on the first `n` pairs of the split (the pairs eval scores): the prose input
    field's first sentence and first 12 words (the docstring corpus's `body`, without the qualname line its
    template adds)."""
    sys.path.insert(0, str(ROOT / "src"))
    from latentbridge.evaluation.rouge import rouge_scores

    columns = corpus_columns(corpus)
    source, target = columns.get("dataset_input_field", "body"), columns["dataset_target_field"]
    with (corpus / f"{split}.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line, _ in zip(f, range(n))]
    references = [r[target] for r in rows]
    return {name: rouge_scores([rule(r[source]) for r in rows], references).mean
            for name, rule in (("rule: the input's first sentence", first_sentence),
                               (f"rule: the input's first {RULE_WORDS} words", first_words))}


def stage_seconds(metrics: list[dict]) -> dict[str, float]:
    """Each stage's wall time from metrics.jsonl: its first record to the next stage's first (the last stage:
    to its last record). The steps before a stage's first record are not counted."""
    first: dict[str, float] = {}
    last = 0.0
    for record in metrics:
        if "stage" in record and "time" in record:
            first.setdefault(record["stage"], record["time"])
            last = record["time"]
    starts = list(first.items())
    ends = [t for _, t in starts[1:]] + [last]
    return {stage: round(end - start, 1) for (stage, start), end in zip(starts, ends)}


def samples_markdown(samples: list[dict]) -> str:
    """The report's samples as a table, inputs left out."""
    columns = [k for k in (samples[0] if samples else {}) if k not in ("id", "input")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(" ".join(str(s[k]).split()).replace("|", "/") for k in columns) + " |"
              for s in samples]
    return "\n".join(lines)


def truncation(run: Path) -> dict:
    """Per split: test inputs over max_seq_len and targets over max_target_len, with the trained model's
    tokenizers (the config saved in the hand-off model), and the tokens per word of each side."""
    import os

    sys.path.insert(0, str(ROOT / "src"))
    os.chdir(ROOT)  # the model fields are relative to where main.py ran
    from transformers import AutoTokenizer

    from latentbridge.data.sources import load_dialogue_split
    from latentbridge.evaluation.trained_model import checkpoint_config
    from latentbridge.recipe import data_spec
    from latentbridge.training.checkpoint import load_model_file

    path = run / "ck" / "best_model.pt"
    c = checkpoint_config(load_model_file(path).config, path)
    enc, dec = AutoTokenizer.from_pretrained(c.modernbert_model), AutoTokenizer.from_pretrained(c.gpt2_model)
    out = {"models": c.modernbert_model}
    for split in (c.train_split, c.test_split):
        examples = load_dialogue_split(data_spec(c), split).examples
        inputs = [len(enc(e.input_text)["input_ids"]) for e in examples]
        targets = [len(dec(e.target_text, add_special_tokens=False)["input_ids"]) + 1 for e in examples]  # + end
        words_in = sum(len(e.input_text.split()) for e in examples)
        words_out = sum(len(e.target_text.split()) for e in examples)
        out[split] = {"n": len(examples), "inputs_over_max_seq_len": sum(n > c.max_seq_len for n in inputs),
                      "targets_over_max_target_len": sum(n > c.max_target_len for n in targets),
                      "max_seq_len": c.max_seq_len, "max_target_len": c.max_target_len,
                      "input_tokens_per_word": round((sum(inputs) - 2 * len(inputs)) / words_in, 2),
                      "target_tokens_per_word": round((sum(targets) - len(targets)) / words_out, 2)}
    return out


def markdown(report: dict, rules: dict[str, dict[str, float]]) -> str:
    lines = ["| system | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum |", "|---|---|---|---|---|"]
    for name, scores in {**report["systems"], **rules}.items():
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(f"{100 * scores[t]:.1f}" for t in ROUGE) + " |")
    lm, pu = report["latent_metrics"], report["prefix_use"]
    lines += ["", "| stage measure | value |", "|---|---|",
              f"| middle: latent cosine (pred vs summary latents) | {lm['cosine']:.3f} |",
              f"| middle: latent MSE | {lm['mse']:.4f} |",
              f"| middle: in-batch retrieval top-1 (chance) | {lm['retrieval_top1']:.3f} ({lm['retrieval_chance']:.3f}) |"]
    for key, label in (("pipeline", "predicted"), ("gold", "gold")):
        u = pu[key]
        lines.append(f"| decoder loss with {label} prefix: true / shuffled (gap) | "
                     f"{u['loss_true_prefix']:.3f} / {u['loss_shuffled_prefix']:.3f} ({u['gap']:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--assets", type=Path, help="a frozen copy of the tiny assets (models/, data/) to use instead "
                        "of rebuilding cache/tiny: runs compared with each other must share the same backbones")
    parser.add_argument("--real", type=Path, help="the folder bench/build_real_corpus.py or build_man_corpus.py "
                        "wrote: train and evaluate on it, with the columns its README.md names")
    parser.add_argument("extra", nargs="*", help="flags passed to both train and eval (after --)")
    a = parser.parse_args()
    run = a.run_dir.resolve()
    real = ["--dataset-name", str(a.real.resolve()), *column_flags(a.real)] if a.real else []
    common = ["--preset", a.preset, "--checkpoint-dir", str(run / "ck"), "--output-dir", str(run / "runs"),
              *(asset_flags(a.assets.resolve()) if a.assets else []), *real, *a.extra]
    timings = {}
    if not a.skip_train:
        timings["train_s"] = main_py("--mode", "train", "--no-use-tui", *common)
    timings["eval_s"] = main_py("--mode", "eval", *common, "--output-file", str(run / "eval.json"),
                                *([] if a.no_baselines else ["--baselines"]))
    report = json.loads((run / "eval.json").read_text())
    print(markdown(report, rule_scores(a.real.resolve(), report["n_examples"]) if a.real else {}))
    print(samples_markdown(report["samples"]))
    summary, metrics = run / "runs" / "summary.json", run / "runs" / "metrics.jsonl"
    trainable = json.loads(summary.read_text()).get("trainable_parameters") if summary.exists() else None
    stages = stage_seconds([json.loads(line) for line in metrics.read_text().splitlines()]) if metrics.exists() \
        else {}
    print(json.dumps({**timings, "stage_s": stages, "eval_parts_s": report.get("seconds"),
                      "trainable_parameters": trainable}))
    if a.real:
        print(json.dumps(truncation(run), indent=1))


if __name__ == "__main__":
    main()
