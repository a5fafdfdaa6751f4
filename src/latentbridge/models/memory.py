"""Parameter counts and a training-memory estimate without loading (or downloading) any weights.

Backbone sizes come from the local folder's config.json, or the local hub cache, or, for the default
hub names, the published configs written out below; models are then built on the meta device, so
counts are exact and cost no memory. The activation estimate is a rough per-token sum for the
decoder (the largest consumer in the adapter stages): expect it to be within a factor of ~1.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, Gemma3TextConfig, ModernBertConfig

from latentbridge.models.adapter import PrefixAdapter
from latentbridge.models.decoder import CE_CHUNK
from latentbridge.models.encoder import SegmentPoolCompressor
from latentbridge.models.loading import quiet_transformers
from latentbridge.models.middle import build_middle
from latentbridge.models.specs import ModelSpec

GIB = 1024 ** 3


def published_config(name: str) -> Optional[Any]:
    """The published architecture of the default checkpoints (never downloaded)."""
    if name == "answerdotai/ModernBERT-base":
        # hidden 768, 22 layers, 12 heads, MLP 1152, vocab 50368 (the 5.x defaults are these values)
        return ModernBertConfig(vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22,
                                num_attention_heads=12, local_attention=128, max_position_embeddings=8192)
    if name in ("google/gemma-3-270m", "google/gemma-3-270m-it"):
        rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}
        return Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
                                sliding_window=512, max_position_embeddings=32768, rope_parameters=rope)
    return None


def locate_config(name: str) -> tuple[Optional[Any], str]:
    """(config or None, where it came from): local folder, local hub cache, published, or unknown."""
    quiet_transformers()
    path = Path(name).expanduser()
    if path.exists():
        try:
            return AutoConfig.from_pretrained(str(path), local_files_only=True), "local folder"
        except (OSError, ValueError):
            return None, "local folder without a readable config.json"
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True), "local hub cache"
    except (OSError, ValueError):
        pass
    published = published_config(name)
    if published is not None:
        return published, "published config (weights not on this machine)"
    return None, "not found locally (hub not reachable)"


@dataclass(frozen=True)
class PartCount:
    total: int
    trainable: int  # the most that ever trains: top unfrozen layers of a backbone, all of a small part


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def part_counts(spec: ModelSpec, encoder_config: Optional[Any], decoder_config: Optional[Any]
                ) -> dict[str, Optional[PartCount]]:
    """Parameter counts of encoder, compressor, middle, adapter, decoder (None where a config is unknown)."""
    out: dict[str, Optional[PartCount]] = {}
    with torch.device("meta"):
        if encoder_config is not None:
            enc = AutoModel.from_config(encoder_config)
            n = spec.encoder.unfrozen_layers
            top = sum(_count(m) for m in enc.layers[len(enc.layers) - n:]) + (_count(enc.final_norm) if n else 0)
            out["encoder"] = PartCount(_count(enc), top)
            comp = SegmentPoolCompressor(encoder_config.hidden_size, spec.encoder.latent_dim,
                                         spec.encoder.latent_seq_len, True)
            out["compressor"] = PartCount(_count(comp), _count(comp))
        else:
            out["encoder"] = out["compressor"] = None
        middle = build_middle(spec.middle)
        out["middle"] = PartCount(_count(middle), _count(middle))
        if decoder_config is not None:
            dec = AutoModelForCausalLM.from_config(decoder_config)
            n = spec.decoder.unfrozen_layers
            layers = dec.model.layers
            top = sum(_count(m) for m in layers[len(layers) - n:]) + (_count(dec.model.norm) if n else 0)
            out["decoder"] = PartCount(_count(dec), top)
            adapter = PrefixAdapter(spec.adapter, decoder_config.hidden_size)
            out["adapter"] = PartCount(_count(adapter), _count(adapter))
        else:
            out["decoder"] = out["adapter"] = None
    return out


def decoder_activation_bytes_per_token(cfg: Any, act_bytes: int) -> int:
    """Activations one decoder layer keeps for backward, per token (no checkpointing, sdpa/flash)."""
    H, I = cfg.hidden_size, cfg.intermediate_size
    q = cfg.num_attention_heads * cfg.head_dim
    kv = cfg.num_key_value_heads * cfg.head_dim
    return (6 * H + 3 * q + 2 * kv + 4 * I) * act_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    rows: list[tuple[str, float]]  # (what, GiB)

    @property
    def total_gib(self) -> float:
        return sum(v for _, v in self.rows)


def estimate_adapter_stage_memory(counts: dict[str, Optional[PartCount]], decoder_config: Any, batch_size: int,
                                  prefix_len: int, target_len: int, half_precision: bool,
                                  gradient_checkpointing: bool) -> MemoryEstimate:
    """Peak training memory of the adapter stages (2 and 4), the heaviest: the prefix's gradient flows
    through every decoder layer, and the logits over the vocabulary are large. The encoder is not run
    (latents come from the cache); its weights are still resident."""
    act = 2 if half_precision else 4
    weights = sum(c.total for c in counts.values() if c is not None) * 4
    trainable = sum(c.trainable for k, c in counts.items() if c is not None and k in ("adapter", "decoder"))
    optimizer = trainable * (4 + 8)  # fp32 grads + AdamW moments
    S = prefix_len + target_len + 12   # + chat framing tokens
    tokens = batch_size * S
    layers = decoder_config.num_hidden_layers
    per_layer = tokens * decoder_activation_bytes_per_token(decoder_config, act)
    if gradient_checkpointing:
        activations = tokens * decoder_config.hidden_size * act * layers + per_layer
    else:
        activations = per_layer * layers

    # the loss keeps the logits of at most CE_CHUNK target tokens at a time (logits, fp32 copy, grad)
    logits = min(batch_size * target_len, CE_CHUNK) * decoder_config.vocab_size * (act + 4 + 4)
    rows = [("weights (fp32)", weights / GIB), ("grads + AdamW (trainable)", optimizer / GIB),
            (f"decoder activations ({'checkpointed' if gradient_checkpointing else 'stored'})", activations / GIB),
            ("target logits + grad (one chunk)", logits / GIB)]
    return MemoryEstimate(rows)
