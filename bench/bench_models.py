"""Forward+backward throughput of each model part on this machine, at tiny and at real size.

Real size = random weights in the published architectures (ModernBERT-base, Gemma-3-270m; nothing is
downloaded). Every case runs 1 warm-up step and a few timed steps, so the whole run stays bounded.

    python bench/bench_models.py                 # tiny + real, prints a markdown table
    python bench/bench_models.py --sizes tiny --steps 5
    python bench/bench_models.py --reconstruction 600 --decoder-layers 0   # tiny stage-2 analogue
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.models.adapter import PrefixAdapter  # noqa: E402
from latentbridge.models.decoder import Decoder  # noqa: E402
from latentbridge.models.encoder import LatentEncoder  # noqa: E402
from latentbridge.models.memory import published_config  # noqa: E402
from latentbridge.models.middle import MiddleTransformer  # noqa: E402
from latentbridge.models.specs import AdapterSpec, DecoderSpec, EncoderSpec, LossSpec, MiddleSpec, SamplingSpec  # noqa: E402

SIZES = {
    # name: (encoder, decoder, latent_dim, K, prefix_len, batch, input_len, target_len)
    "tiny": ("tiny", "tiny", 64, 4, 8, 2, 128, 48),
    "real": ("answerdotai/ModernBERT-base", "google/gemma-3-270m", 256, 8, 50, 2, 512, 128),
}


def build_parts(size: str, assets_root: Path):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    enc_name, dec_name, D, K, P, *_ = SIZES[size]
    assets = ensure_tiny_assets(assets_root, seed=0)
    dec_tok = AutoTokenizer.from_pretrained(assets.decoder_dir)
    torch.manual_seed(0)
    if size == "tiny":
        enc_model = AutoModel.from_pretrained(assets.encoder_dir, attn_implementation="sdpa")
        dec_model = AutoModelForCausalLM.from_pretrained(assets.decoder_dir, attn_implementation="sdpa")
    else:
        enc_cfg, dec_cfg = published_config(enc_name), published_config(dec_name)
        enc_cfg._attn_implementation = dec_cfg._attn_implementation = "sdpa"
        enc_model, dec_model = AutoModel.from_config(enc_cfg), AutoModelForCausalLM.from_config(dec_cfg)
    encoder = LatentEncoder(enc_model, None, EncoderSpec(model=enc_name, latent_dim=D, latent_seq_len=K,
                                                         unfrozen_layers=2))
    decoder = Decoder(dec_model, dec_tok, DecoderSpec(model=dec_name, unfrozen_layers=0))
    middle = MiddleTransformer(MiddleSpec(latent_dim=D, latent_seq_len=K, dropout=0.0))
    adapter = PrefixAdapter(AdapterSpec(latent_dim=D, prefix_len=P, dropout=0.0), decoder.hidden_size,
                            decoder.token_embedding_rms())
    for m in (encoder, decoder, middle, adapter):
        m.requires_grad_(False)
    return encoder, middle, adapter, decoder


def timed(fn: Callable[[], None], steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def bench_size(size: str, steps: int, assets_root: Path) -> list[tuple[str, str, str, float, float]]:
    encoder, middle, adapter, decoder = build_parts(size, assets_root)
    _, _, D, K, P, B, T_in, T_tgt = SIZES[size]
    vocab_enc = encoder.backbone.config.vocab_size
    ids = torch.randint(5, vocab_enc, (B, T_in))
    mask = torch.ones(B, T_in, dtype=torch.long)
    latents = F.normalize(torch.randn(B, K, D), dim=-1)
    target_ids = torch.randint(6, min(decoder.model.config.vocab_size, 1000), (B, T_tgt))
    target_mask = torch.ones(B, T_tgt, dtype=torch.long)
    rows = []

    def add(part: str, what: str, seconds: float, tokens: int) -> None:
        rows.append((size, part, what, seconds * 1000, tokens / seconds))

    with torch.no_grad():
        add("encoder+compressor", f"forward, frozen (preprocess), B={B} T={T_in}",
            timed(lambda: encoder(ids, mask), steps), B * T_in)
    for m in encoder.trainable_backbone_modules() + [encoder.compressor]:
        m.requires_grad_(True)

    def enc_step():
        lat, _ = encoder(ids, mask)
        lat.sum().backward()
    add("encoder+compressor", f"fwd+bwd, top 2 layers train, B={B} T={T_in}", timed(enc_step, steps), B * T_in)
    encoder.requires_grad_(False)

    middle.requires_grad_(True)
    lmask = torch.ones(B, K, dtype=torch.bool)

    def mid_step():
        middle.latent_loss(middle(latents), latents, lmask, LossSpec())["loss"].backward()
    add("middle", f"latent loss fwd+bwd, B={B} K={K} D={D}", timed(mid_step, steps * 5), B * K)
    middle.requires_grad_(False)

    adapter.requires_grad_(True)

    def adapter_step():
        adapter(latents).pow(2).mean().backward()
    add("adapter", f"fwd+bwd, B={B} P={P}", timed(adapter_step, steps * 5), B * P)

    def adapter_decoder_step():
        decoder.loss(adapter(latents), target_ids, target_mask).backward()
    add("adapter+decoder", f"token CE fwd+bwd (decoder frozen), B={B} P={P} T={T_tgt}",
        timed(adapter_decoder_step, steps), B * T_tgt)
    adapter.requires_grad_(False)

    n_new = 16
    with torch.no_grad():
        prefix = adapter(latents)
        # eos never stops it early: the generated count is n_new per row
        decoder.stop_ids = [-1]
        add("decoder", f"greedy generate {n_new} tokens, B={B}",
            timed(lambda: decoder.generate(prefix, SamplingSpec(max_new_tokens=n_new, do_sample=False)), 1),
            B * n_new)
    return rows


def token_f1(a: str, b: str) -> float:
    a_words, b_words = a.lower().split(), b.lower().split()
    common = sum(min(a_words.count(w), b_words.count(w)) for w in set(a_words))
    return 2 * common / (len(a_words) + len(b_words)) if common else 0.0


def reconstruction(steps: int, decoder_layers: int, assets_root: Path, n_eval: int = 20) -> None:
    """Stage-2 analogue on the tiny preset: train the adapter (+ top decoder layers) to decode a summary
    from its own latents, then greedy-decode validation summaries and report token F1 against them."""
    import json
    import random

    from latentbridge.config import preset_config
    from latentbridge.models.bridge import build_model, set_trainable
    from latentbridge.models.runtime import resolve_runtime
    from latentbridge.recipe import model_spec, runtime_request, sampling_spec

    assets = ensure_tiny_assets(assets_root, seed=0)
    c = preset_config("tiny", modernbert_model=str(assets.encoder_dir), gpt2_model=str(assets.decoder_dir),
                      decoder_unfrozen_layers=decoder_layers)
    model = build_model(model_spec(c, resolve_runtime(runtime_request(c))), seed=0)

    def summaries(split: str) -> list[str]:
        with open(assets.data_dir / "samsum" / f"{split}.jsonl") as f:
            return [json.loads(line)["summary"] for line in f]

    texts, val = summaries("train"), summaries("validation")[:n_eval]
    with torch.no_grad():
        latents, latent_mask = model.encode(*model.encoder.tokenize(texts, c.max_seq_len))
    target_ids, target_mask = model.decoder.target_ids(texts, c.max_target_len)
    model.train()
    set_trainable(model, {"adapter", "decoder"} if decoder_layers else {"adapter"})
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rng, start = random.Random(0), time.perf_counter()
    for step in range(steps):
        idx = torch.tensor(rng.sample(range(len(texts)), 32))
        width = int(target_mask[idx].sum(1).max())
        loss = model.decoder_loss(model.prefix(latents[idx], latent_mask[idx]), target_ids[idx, :width],
                                  target_mask[idx, :width])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    outs = model.generate(val, c.max_seq_len, sampling_spec(c), use_middle=False)
    f1 = sum(token_f1(v, o) for v, o in zip(val, outs)) / len(val)
    print(f"decoder layers trained: {decoder_layers}, {steps} steps of 32 in {time.perf_counter() - start:.0f} s, "
          f"last loss {loss.item():.3f}, validation token F1 {f1:.3f}, distinct outputs {len(set(outs))}/{len(val)}")
    for v, o in list(zip(val, outs))[:3]:
        print(f"  {v!r} -> {o!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "real"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reconstruction", type=int, metavar="STEPS",
                        help="instead of timing: the tiny reconstruction check with this many training steps")
    parser.add_argument("--decoder-layers", type=int, default=0, help="decoder layers trained in --reconstruction")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: on a shared 2-core machine more threads oversubscribe "
                             "and small ops slow down by 10x or more)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.reconstruction:
        with tempfile.TemporaryDirectory() as tmp:
            reconstruction(args.reconstruction, args.decoder_layers, Path(tmp))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows += bench_size(size, args.steps, Path(tmp))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {platform.machine()}, {os.cpu_count()} cores (load average {load:.1f}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), fp32, sdpa, {args.steps} timed steps after 1 warm-up\n")
    print("| size | part | what | ms / step | tokens / s |")
    print("|---|---|---|---:|---:|")
    for size, part, what, ms, tps in rows:
        print(f"| {size} | {part} | {what} | {ms:.1f} | {tps:,.0f} |")


if __name__ == "__main__":
    main()
