"""Peak memory of training steps at real size against the doctor's estimate, and what checkpointing saves.

Random weights in the published ModernBERT-base and Gemma-3-270m architectures (built once into
cache/real_size/ by latentbridge.assets.ensure_random_published_assets), full-length synthetic batches (the
doctor's worst case), each case in a fresh process: the model is built and every weight read once (the
weights are memory-mapped from their files, and a run has read them all by the adapter stages:
preprocessing the encoder), the stage's step runs as the trainer runs it, and the process's peak RSS over
the steps (the high-water mark reset before them) is set beside the doctor's estimate for the same settings.
"bf16" is bf16 autocast over fp32 weights on this CPU, what an sdpa run on a GPU holds (the run itself computes
fp32 on a CPU).

    python bench/bench_memory.py                               # the cases of docs/benchmarks.md
    python bench/bench_memory.py --cases check-fp32 base-fp32  # some of them
    python bench/bench_memory.py --layers                      # per-layer saved-for-backward bytes per token
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import CHECK_SETTINGS as CHECK
from common import REAL_SIZE_ROOT, StageStep, asset_fields, fmt, stage_by_name, synthetic_batch, table

CASES = {  # name: (stage, Config overrides, bf16 autocast)
    "check-fp32-nockpt": ("pretrain_adapter", {**CHECK, "use_gradient_checkpointing": False}, False),
    "check-fp32": ("pretrain_adapter", CHECK, False),
    "check-bf16-nockpt": ("pretrain_adapter", {**CHECK, "use_gradient_checkpointing": False}, True),
    "check-bf16": ("pretrain_adapter", CHECK, True),
    "check-fp32-unfrozen2-nockpt": ("pretrain_adapter", {**CHECK, "decoder_unfrozen_layers": 2,
                                                         "use_gradient_checkpointing": False}, False),
    "check-fp32-unfrozen2": ("pretrain_adapter", {**CHECK, "decoder_unfrozen_layers": 2}, False),
    "check-phase2-fp32": ("train_encoder", {**CHECK, "training_phase": "phase2", "cache_store_text": True}, False),
    "check-phase2-bf16": ("train_encoder", {**CHECK, "training_phase": "phase2", "cache_store_text": True}, True),
    "base-fp32": ("finetune_adapter", {}, False),
    "base-bf16": ("finetune_adapter", {}, True),
}


def config_for(overrides: dict, assets) -> "object":
    from latentbridge.config import preset_config

    return preset_config("base", device="cpu", use_bf16=False, use_fp16=False, num_workers=0,
                         **asset_fields(assets), **overrides)


def doctor_estimate(config, stage, bf16: bool):
    """The doctor's estimate of this step (models.memory.estimate_step_memory, the doctor's code path)."""
    from latentbridge import recipe
    from latentbridge.models.memory import estimate_step_memory, locate_config, part_counts
    from latentbridge.models.specs import MemoryPrecision, Runtime

    enc, dec = locate_config(config.modernbert_model)[0], locate_config(config.gpt2_model)[0]
    counts = part_counts(recipe.model_spec(config, Runtime()), enc, dec)
    precision = MemoryPrecision(compute="bf16" if bf16 else "fp32", checkpointing=config.use_gradient_checkpointing,
                                cpu=True)
    return estimate_step_memory(counts, enc, dec, recipe.step_shape(config, stage), precision)


def measure(case: str, steps: int) -> dict:
    """In this (fresh) process: build, reset the peak, run `steps` steps; peak RSS and saved-for-backward bytes."""
    import torch

    from latentbridge import recipe
    from latentbridge.assets import ensure_random_published_assets
    from latentbridge.models.bridge import build_model
    from latentbridge.models.activation_checkpointing import SavedForBackward
    from latentbridge.models.runtime import resolve_runtime
    from latentbridge.training.trainer import peak_memory_gb, reset_peak_memory

    stage_name, overrides, bf16 = CASES[case]
    config = config_for(overrides, ensure_random_published_assets(REAL_SIZE_ROOT))
    stage = stage_by_name(config, stage_name)
    model = build_model(recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config), "cpu")), seed=0)
    shape = recipe.step_shape(config, stage)
    batch = synthetic_batch(model, stage, shape.batch_size, shape.encoder_len, shape.target_len)
    step = StageStep(model, stage, "bf16" if bf16 else "no", config.max_seq_len, config.max_target_len)
    with torch.no_grad():  # a run has read every weight by then (preprocessing the encoder): all pages resident
        for p in model.parameters():
            p.sum()
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    with SavedForBackward(model) as saved:
        seconds = [step.run(batch)]
    seconds += [step.run(batch) for _ in range(steps - 1)]
    step.close()
    return {"peak_gib": peak_memory_gb(cpu), "saved_mib": saved.bytes / 2**20, "seconds": seconds}


def run_case(case: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, "--steps", str(steps)], capture_output=True,
                         text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if out.returncode != 0:
        raise SystemExit(f"{case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main_table(cases: list[str], steps: int) -> None:
    from latentbridge import recipe
    from latentbridge.assets import ensure_random_published_assets

    assets = ensure_random_published_assets(REAL_SIZE_ROOT)
    rows = []
    for case in cases:
        stage_name, overrides, bf16 = CASES[case]
        config = config_for(overrides, assets)
        stage = stage_by_name(config, stage_name)
        shape = recipe.step_shape(config, stage)
        got = run_case(case, steps)
        est = doctor_estimate(config, stage, bf16).total_gib
        rows.append([case, stage_name, shape.batch_size, f"{shape.prefix_len}+{shape.target_len}",
                     "bf16 autocast" if bf16 else "fp32", "on" if config.use_gradient_checkpointing else "off",
                     config.decoder_unfrozen_layers, fmt(got["saved_mib"], 0), fmt(min(got["seconds"]), 1),
                     fmt(got["peak_gib"]), fmt(est), f"{est / got['peak_gib']:.2f}"])
        print(table(["case", "stage", "batch", "prefix+target", "compute", "checkpointing", "decoder layers trained",
                     "saved for backward (MiB)", "s / step", "peak RSS (GiB)", "doctor (GiB)", "doctor / peak"],
                    rows[-1:]), flush=True)
    print()
    print(table(["case", "stage", "batch", "prefix+target", "compute", "checkpointing", "decoder layers trained",
                 "saved for backward (MiB)", "s / step", "peak RSS (GiB)", "doctor (GiB)", "doctor / peak"], rows))


def layer_table() -> None:
    """Saved-for-backward bytes per token of one layer of each backbone (the slope over batch sizes and the
    difference of 3- and 1-layer models, so masks and position tables drop out), as the doctor counts them."""
    import copy

    import torch
    from transformers import Gemma3ForCausalLM, ModernBertModel

    from latentbridge.models.activation_checkpointing import SavedForBackward
    from latentbridge.models.memory import layer_bytes_per_token, published_config
    from latentbridge.models.specs import MemoryPrecision

    def saved(kind: str, layers: int, batch: int, bf16: bool, bf16_weights: bool, trained: bool) -> int:
        name = "google/gemma-3-270m-it" if kind == "gemma3" else "answerdotai/ModernBERT-base"
        cfg = copy.deepcopy(published_config(name))
        cfg.num_hidden_layers, cfg.layer_types, cfg._attn_implementation = layers, ["full_attention"] * layers, "sdpa"
        model = (Gemma3ForCausalLM if kind == "gemma3" else ModernBertModel)(cfg).eval()
        model.to(torch.bfloat16 if bf16_weights else torch.float32).requires_grad_(False)
        for layer in (model.model.layers if kind == "gemma3" else model.layers) if trained else []:
            layer.float().requires_grad_(True)  # what trains is kept fp32 (master weights)
        x = torch.randn(batch, 128, cfg.hidden_size, requires_grad=True,
                        dtype=torch.bfloat16 if bf16_weights else torch.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), SavedForBackward(model) as s:
            if kind == "gemma3":
                model.model(inputs_embeds=x, use_cache=False)
            else:
                model(inputs_embeds=x)
        return s.bytes

    rows = []
    for kind in ("gemma3", "modernbert"):
        for compute, bf16_weights in (("fp32", False), ("bf16", False), ("bf16", True)):
            for trained in (False, True):
                r = {(n, b): saved(kind, n, b, compute == "bf16", bf16_weights, trained)
                     for n in (1, 3) for b in (2, 4)}
                measured = ((r[3, 4] - r[1, 4]) - (r[3, 2] - r[1, 2])) / 2 / (2 * 128)
                p = MemoryPrecision(compute=compute, bf16_weights=bf16_weights)
                cfg = published_config("google/gemma-3-270m-it" if kind == "gemma3" else "answerdotai/ModernBERT-base")
                counted = layer_bytes_per_token(cfg, kind, p, trained)
                rows.append([kind, compute + (" (bf16 weights)" if bf16_weights else ""),
                             "trained" if trained else "frozen", f"{measured:.0f}", counted])
    print(table(["backbone", "compute", "layer", "measured (B / token)", "doctor (B / token)"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per case (the peak covers all)")
    parser.add_argument("--layers", action="store_true", help="per-layer saved-for-backward bytes instead")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
    elif args.layers:
        layer_table()
    else:
        main_table(args.cases, args.steps)


if __name__ == "__main__":
    main()
