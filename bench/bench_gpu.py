"""GPU throughput of every training stage at real size: samples/s, tokens/s, MFU and peak memory, as Markdown.

On a CUDA machine with no hub access: random weights in the published ModernBERT-base and Gemma 3
architectures (latentbridge.assets.ensure_random_published_assets, into cache/real_size/), each stage of the
base preset's plan run for a fixed number of optimizer steps at the base preset's batch sizes and lengths (full
-length synthetic batches), bf16, as the trainer runs a step (bench/common.StageStep), for each attention
backend (sdpa; flash_attention_2 when flash_attn imports) with torch.compile off and on.

MFU = model FLOPs per step / step time / the GPU's peak dense bf16 FLOP/s (looked up by device name, or
--peak-tflops). Model FLOPs count forward and backward once (recomputation under gradient checkpointing is
not model work): 2 x parameters x tokens for each forward matmul, the same again for the gradient of the
inputs wherever the gradient flows (the frozen decoder in the adapter stages), and again for the weights of
what trains; causal attention 2 x 2 x context x width per token and layer (sliding layers see their window);
the LM head only at the target positions (the loss computes no other logits).

    python bench/bench_gpu.py                                   # every stage, sdpa/flash x compile off/on
    python bench/bench_gpu.py --stages finetune_adapter --compile off --steps 10
    python bench/bench_gpu.py --decoder google/gemma-3-1b-it   # a bigger Gemma 3 decoder
    python bench/bench_gpu.py --smoke                           # CPU, tiny models, 2 steps (the test suite)
    accelerate launch --config_file docs/accelerate_fsdp.yaml bench/bench_gpu.py --fsdp --compile off

--fsdp: the layers sharded over the GPUs of an `accelerate launch` with docs/accelerate_fsdp.yaml (training/
sharding.py), the model built on the CPU and only its shards and replicated parts moved to each GPU; peak memory
is then rank 0's. Everything else as above (with --decoder google/gemma-3-4b-it: a decoder one GPU may not hold).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from common import REAL_SIZE_ROOT, StageStep, asset_fields, fmt, synthetic_batch, table

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L4", 121.0), ("A10", 125.0), ("RTX 4090", 165.0))


def peak_tflops(device_name: str, override: Optional[float]) -> Optional[float]:
    if override:
        return override
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name in device_name), None)


# ------------------------------------------------------------------------------------------------ FLOPs

def layer_params(count: Any, cfg: Any) -> float:
    """Parameters of one transformer layer (the backbone's exact count without its token embeddings)."""
    return (count.total - cfg.vocab_size * cfg.hidden_size) / cfg.num_hidden_layers


def _attention_flops_per_token(cfg: Any, context: int) -> float:
    """Forward QK^T and AV of one token over its causal context, summed over the layers (sliding layers see
    at most their window)."""
    heads = cfg.num_attention_heads
    width = heads * (getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    window = getattr(cfg, "sliding_window", None) or context
    per_layer = [min(context, window) if t == "sliding_attention" else context
                 for t in getattr(cfg, "layer_types", ["full_attention"] * cfg.num_hidden_layers)]
    return sum(2 * 2 * (c / 2) * width for c in per_layer)  # causal: half the context on average


def step_flops(shape: Any, counts: dict, enc_cfg: Any, dec_cfg: Any) -> float:
    """Model FLOPs of one optimizer step of a stage shaped `shape` (models.specs.StepShape)."""
    B = shape.batch_size
    small = sum(counts[p].total for p in ("middle", "adapter", "compressor") if p in shape.trains)
    flops = 6.0 * small * B * (shape.prefix_len if shape.decoder else 8)  # middle/adapter/compressor: tiny
    if shape.decoder:
        S = shape.prefix_len + 12 + shape.target_len
        layer = layer_params(counts["decoder"], dec_cfg)
        trained = counts["decoder"].top_layers if "decoder" in shape.trains else 0
        forward = 2 * layer * dec_cfg.num_hidden_layers * B * S + _attention_flops_per_token(dec_cfg, S) * B * S
        head = 2 * dec_cfg.hidden_size * dec_cfg.vocab_size * B * shape.target_len
        # forward, input gradients (the prefix's gradient crosses every layer), weight gradients of what trains
        flops += 2 * (forward + head) + 2 * layer * trained * B * S
    if shape.encodes_live:
        T = shape.encoder_len
        layer = layer_params(counts["encoder"], enc_cfg)
        trained = counts["encoder"].top_layers if "encoder" in shape.trains else 0
        forward = 2 * layer * enc_cfg.num_hidden_layers * B * T + 2 * _attention_flops_per_token(enc_cfg, T) * B * T
        flops += forward + 4 * layer * trained * B * T  # gradients reach only the trained top layers
    return flops


# ------------------------------------------------------------------------------------------------ runs

def say(text: str) -> None:
    """Print on the first process only (several run under accelerate launch --fsdp)."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(text, flush=True)


def base_config(assets: Any, decoder_name: str, attn: str, compile_: bool, smoke: bool) -> Any:
    from latentbridge.config import preset_config
    from latentbridge.models.memory import published_config

    fields = {**asset_fields(assets), "attn_implementation": attn, "use_torch_compile": compile_,
              "torch_compile_mode": "default", "num_workers": 0}
    if smoke:
        return preset_config("tiny", **fields, device="cpu", batch_size=2, use_gradient_checkpointing=True)
    return preset_config("base", **fields, device="cuda", use_bf16=True,
                         gpt2_hidden_dim=published_config(decoder_name).hidden_size)


def bench_stage(model: Any, config: Any, stage: Any, steps: int, warmup: int, device: str) -> dict:
    import torch

    from latentbridge import recipe

    shape = recipe.step_shape(config, stage)
    batch = synthetic_batch(model, stage, shape.batch_size, shape.encoder_len, shape.target_len)
    step = StageStep(model, stage, "bf16" if device == "cuda" else "no", config.max_seq_len, config.max_target_len)
    for _ in range(warmup):
        step.run(batch)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = sum(step.run(batch) for _ in range(steps)) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    step.close()
    tokens = 0  # per sample: what the decoder reads, else what the encoder reads live, else none (middle stages)
    if shape.decoder or shape.encodes_live:
        tokens = shape.prefix_len + 12 + shape.target_len if shape.decoder else shape.encoder_len
    return {"shape": shape, "seconds": seconds, "peak": peak, "tokens": tokens}


@contextlib.contextmanager
def bench_assets(args: argparse.Namespace) -> Iterator[Any]:
    """The models to run: the random published sizes, or (--smoke) tiny ones: those in --assets, else built into a
    temporary folder removed when the run ends."""
    from latentbridge.assets import ensure_random_published_assets, ensure_tiny_assets

    if not args.smoke:
        yield ensure_random_published_assets(REAL_SIZE_ROOT, decoder=args.decoder)
    elif args.assets:
        yield ensure_tiny_assets(args.assets)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as folder:
            yield ensure_tiny_assets(Path(folder), lm_steps=0)  # no warm-up of the decoder: only the cost counts


def run_benchmarks(args: argparse.Namespace) -> list[list]:
    import torch
    from accelerate import Accelerator

    from latentbridge.training.sharding import wants_sharding

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA device (or --smoke on a CPU)")
    if args.fsdp and not wants_sharding(Accelerator()):
        raise SystemExit("--fsdp runs under: accelerate launch --config_file docs/accelerate_fsdp.yaml "
                         "bench/bench_gpu.py --fsdp")
    with bench_assets(args) as assets:
        return bench_every_stage(args, assets, device)


def bench_every_stage(args: argparse.Namespace, assets: Any, device: str) -> list[list]:
    import torch

    from latentbridge import recipe
    from latentbridge.models.bridge import build_model
    from latentbridge.models.memory import locate_config, part_counts
    from latentbridge.models.runtime import resolve_runtime

    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    rows = []
    for attn in args.attn:
        for compile_ in args.compile:
            config = base_config(assets, args.decoder, attn, compile_ == "on", args.smoke)
            spec = recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config), device))
            model = build_model(spec, seed=0, on_device=not args.fsdp)
            enc, dec = locate_config(config.modernbert_model)[0], locate_config(config.gpt2_model)[0]
            counts = part_counts(spec, enc, dec)
            for stage in recipe.plan(config):
                if args.stages and stage.name not in args.stages:
                    continue
                r = bench_stage(model, config, stage, args.steps, args.warmup, device)
                shape = r["shape"]
                achieved = step_flops(shape, counts, enc, dec) / r["seconds"] / 1e12
                tokens_per_s = shape.batch_size * r["tokens"] / r["seconds"] if r["tokens"] else None
                rows.append([model.attn_implementation, compile_, stage.name, shape.batch_size, fmt(r["seconds"], 3),
                             fmt(shape.batch_size / r["seconds"], 1), fmt(tokens_per_s, 0), fmt(achieved, 1),
                             f"{100 * achieved / peak:.1f}%" if peak else "n/a", fmt(r["peak"])])
                say(table(HEADER, rows[-1:]))
            del model
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    say(f"\ndevice: {name}; peak dense bf16 {peak or 'unknown (--peak-tflops)'} TFLOP/s; decoder "
        f"{assets.decoder_dir.name}; {args.steps} timed steps after {args.warmup} warm-up")
    return rows


HEADER = ["attention", "compile", "stage", "batch", "s / step", "samples / s", "tokens / s", "model TFLOP/s", "MFU",
          "peak allocated (GiB)"]


def main(argv: Optional[list[str]] = None) -> list[list]:
    from latentbridge.models.backends import flash_attn_available

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--stages", nargs="*", default=None, help="stage names (default: every stage of the plan)")
    parser.add_argument("--attn", nargs="*", default=None, choices=("sdpa", "flash_attention_2"),
                        help="default: sdpa, and flash_attention_2 when flash_attn imports")
    parser.add_argument("--compile", nargs="*", default=["off", "on"], choices=("off", "on"))
    parser.add_argument("--decoder", default="google/gemma-3-270m-it", help="a published Gemma 3 name")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not known")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models, 2 steps, no compile (the test)")
    parser.add_argument("--assets", type=Path, default=None, help="--smoke: a folder of built tiny assets to reuse")
    parser.add_argument("--fsdp", action="store_true", help="layers sharded over the GPUs (under accelerate launch)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.compile, args.attn = min(args.steps, 2), 1, ["off"], ["sdpa"]
    args.attn = args.attn or ["sdpa"] + (["flash_attention_2"] if flash_attn_available() else [])
    start = time.perf_counter()
    rows = run_benchmarks(args)
    say("\n" + table(HEADER, rows) + f"\n\n({time.perf_counter() - start:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
