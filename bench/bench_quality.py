"""Quality of the latent pipeline on the bundled task: train with a preset, evaluate with the baselines.

    python bench/bench_quality.py --run-dir /tmp/q                        # train tiny, then eval --baselines
    python bench/bench_quality.py --run-dir /tmp/q --skip-train           # evaluate an existing run again
    python bench/bench_quality.py --run-dir /tmp/q2 -- --decoder-unfrozen-layers 1   # a variant (flags after --)

Writes RUN_DIR/eval.json (the eval report) and prints the markdown rows used in docs/benchmarks.md
(## Quality), then the wall times and each stage's trainable parameter count (the run's summary.json).
Training and evaluation run through main.py exactly as a user runs them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
LABELS = {"latent": "latent pipeline", "reconstruction": "gold summary latents -> adapter -> decoder",
          "constant": "constant baseline", "direct": "direct baseline (decoder fine-tuned on dialogue text)"}


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


def markdown(report: dict) -> str:
    lines = ["| system | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum |", "|---|---|---|---|---|"]
    for name, scores in report["systems"].items():
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
    parser.add_argument("extra", nargs="*", help="flags passed to both train and eval (after --)")
    a = parser.parse_args()
    run = a.run_dir.resolve()
    common = ["--preset", a.preset, "--checkpoint-dir", str(run / "ck"), "--output-dir", str(run / "runs"),
              *(asset_flags(a.assets.resolve()) if a.assets else []), *a.extra]
    timings = {}
    if not a.skip_train:
        timings["train_s"] = main_py("--mode", "train", "--no-use-tui", *common)
    timings["eval_s"] = main_py("--mode", "eval", *common, "--output-file", str(run / "eval.json"),
                                *([] if a.no_baselines else ["--baselines"]))
    report = json.loads((run / "eval.json").read_text())
    print(markdown(report))
    summary = run / "runs" / "summary.json"
    trainable = json.loads(summary.read_text()).get("trainable_parameters") if summary.exists() else None
    print(json.dumps({**timings, "trainable_parameters": trainable}))


if __name__ == "__main__":
    main()
