"""The real-size check, one command: the whole pipeline at the published sizes, offline, with small caps.

Builds random-weight ModernBERT-base and Gemma-3-270m-it models (published architectures, tokenizers of their
vocabulary sizes: latentbridge.assets.ensure_random_published_assets) into cache/real_size/, then runs
`main.py --mode train` through all four stages at real size (the base preset with small caps), `--mode infer`
and a capped `--mode eval`, exactly as a user runs them, and prints per stage: seconds per optimizer step,
target tokens/s, peak memory (process RSS on a CPU, torch.cuda.max_memory_allocated on a GPU; each stage's
own peak) and the doctor's estimate for the same settings beside it. The outputs are meaningless (random
weights); what is checked is that the real-size path runs, and what it costs.

    python bench/real_size.py                         # CPU, ~10-20 minutes here
    python bench/real_size.py --device cuda --bf16    # on a GPU
    python bench/real_size.py --samples 4 --batch-size 2 --work /tmp/rs   # quicker (the slow test)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from common import CHECK_SETTINGS, REAL_SIZE_ROOT, ROOT, asset_fields, fmt, table

STAGES = ("pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter")


def overrides(args: argparse.Namespace, assets, work: Path) -> dict:
    """The Config fields of the check: the base preset at real size, one epoch per stage, small caps."""
    caps = {f"{stage}_max_samples": args.samples for stage in STAGES[:2]}
    epochs = {f"{stage}_epochs": 1 for stage in STAGES}
    return {**asset_fields(assets), **CHECK_SETTINGS, **caps, **epochs, "batch_size": args.batch_size,
            "max_train_samples": args.samples, "max_validation_samples": args.eval_samples,
            "max_test_samples": args.eval_samples, "eval_max_samples": args.eval_samples,
            "gradient_accumulation_steps": 1, "device": args.device,
            "use_bf16": args.bf16, "use_fp16": False, "num_workers": 0, "use_tui": False, "log_every": 1,
            "save_every": 1000, "preprocess_cache_dir": str(work / "cache"), "checkpoint_dir": str(work / "ckpt"),
            "output_dir": str(work / "run")}


def flags(fields: dict) -> list[str]:
    out = ["--preset", "base"]
    for name, value in fields.items():
        flag = "--" + name.replace("_", "-")
        out += [flag if value else "--no-" + name.replace("_", "-")] if isinstance(value, bool) else [flag, str(value)]
    return out


def run(mode: str, fields: dict, *extra: str) -> float:
    """`python main.py --mode <mode>` with the check's flags; its wall seconds (exits on failure)."""
    command = [sys.executable, str(ROOT / "main.py"), "--mode", mode, *flags(fields), *extra]
    start = time.perf_counter()
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"--mode {mode} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return seconds


def stage_rows(metrics: Path, estimates: dict, batch: int) -> list[list]:
    """Per stage, from metrics.jsonl (one line per optimizer step): median seconds per step (batch / samples/s),
    median target tokens/s, the stage's peak memory, and the doctor's estimate."""
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows = []
    for stage in STAGES:
        train = [r for r in lines if r.get("stage") == stage and r.get("split") == "train"]
        if not train:
            continue
        seconds = statistics.median(batch / r["samples_per_s"] for r in train)
        tokens = [r["tokens_per_s"] for r in train if r.get("tokens_per_s")]
        peak = max(r["memory_gb"] for r in train)
        est = estimates[stage].total_gib
        rows.append([stage, len(train), fmt(seconds, 2), fmt(statistics.median(tokens), 0) if tokens else "-",
                     fmt(peak), fmt(est), f"{est / peak:.2f}"])
    return rows


def doctor_estimates(fields: dict) -> dict:
    """The doctor's per-stage estimates for the check's config (modes.doctor.stage_estimates)."""
    import latentbridge
    from latentbridge import recipe
    from latentbridge.models.memory import locate_config, part_counts
    from latentbridge.models.runtime import resolve_runtime
    from latentbridge.modes.doctor import stage_estimates

    config = latentbridge.load_config(preset="base", **fields)
    runtime = resolve_runtime(recipe.runtime_request(config))
    enc, dec = locate_config(config.modernbert_model)[0], locate_config(config.gpt2_model)[0]
    counts = part_counts(recipe.model_spec(config, runtime), enc, dec)
    return stage_estimates(config, enc, dec, counts, recipe.memory_precision(config, runtime))


def main(argv: Optional[list[str]] = None) -> list[list]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--bf16", action="store_true", help="use_bf16 (a CPU computes fp32 regardless)")
    parser.add_argument("--samples", type=int, default=16, help="training examples per stage (default 16)")
    parser.add_argument("--eval-samples", type=int, default=4, help="validation/test examples cached and evaluated")
    parser.add_argument("--batch-size", type=int, default=CHECK_SETTINGS["batch_size"])
    parser.add_argument("--work", type=Path, default=None, help="run folder (default cache/real_size/run-<device>)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from latentbridge.assets import ensure_random_published_assets

    start = time.perf_counter()
    assets = ensure_random_published_assets(REAL_SIZE_ROOT)
    build = time.perf_counter() - start
    work = args.work or REAL_SIZE_ROOT / f"run-{args.device}{'-bf16' if args.bf16 else ''}"
    shutil.rmtree(work, ignore_errors=True)  # a fresh run each time: no resume, no reused cache
    fields = overrides(args, assets, work)
    train = run("train", fields)
    infer = run("infer", fields, "--text", "Anna: lunch at 1? Ben: sure, see you at the cafe.")
    evaluate = run("eval", fields, "--output-file", str(work / "eval.json"))
    report = json.loads((work / "eval.json").read_text())

    rows = stage_rows(work / "run" / "metrics.jsonl", doctor_estimates(fields), args.batch_size)
    memory = "peak RSS (GiB)" if args.device == "cpu" else "peak allocated (GiB)"
    precision = " bf16" if args.bf16 else ""
    print(f"\nreal size, {args.device}{precision}, batch {args.batch_size}, {args.samples} examples a stage, prefix 50 "
          f"+ target {CHECK_SETTINGS['max_target_len']}\n")
    print(table(["stage", "steps", "s / step", "target tokens / s", memory, "doctor (GiB)", "doctor / peak"], rows))
    print(f"\nassets {build:.0f} s (built once), train {train:.0f} s (preprocessing included), infer {infer:.0f} s, "
          f"eval {evaluate:.0f} s ({report['n_examples']} dialogues), total {time.perf_counter() - start:.0f} s")
    if len(rows) != len(STAGES):
        raise SystemExit(f"expected metrics of the four stages, got {[r[0] for r in rows]}")
    return rows


if __name__ == "__main__":
    main()
