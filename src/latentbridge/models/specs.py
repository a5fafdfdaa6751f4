"""Small, explicit settings for each model part (no torch, no Config import).

`src/latentbridge/modes/specs.py` is the one place that turns a `Config` into these; everything under
`src/latentbridge/models/` takes only them. Torch-free so the config module may import the choice tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Initialisations of the middle's stop latent (a learned parameter, seeded by stop_latent_seed):
#   random_normalized  N(0, 1) draw scaled to unit length (the default; far from every real latent)
#   random             N(0, 1/latent_dim) draw, not normalised
#   zeros              the origin: its cosine to anything is 0, so generation never stops early
#                      until training has moved it away from the origin
STOP_LATENT_INITS = ("random_normalized", "random", "zeros")
ATTENTION_IMPLEMENTATIONS = ("flash_attention_2", "sdpa", "eager")
MODEL_PARTS = ("encoder", "compressor", "middle", "adapter", "decoder")


@dataclass(frozen=True)
class EncoderSpec:
    """ModernBERT (hub name or local folder) plus the segment-pooling compressor."""

    model: str
    latent_dim: int
    latent_seq_len: int
    normalize_latent: bool = True
    unfrozen_layers: int = 0          # top backbone layers that may train (set_trainable decides when)
    expected_hidden_dim: Optional[int] = None  # checked against the loaded model
    hidden_dim_field: str = "modernbert_hidden_dim"  # named in the mismatch error
    model_field: str = "modernbert_model"            # named in the load error


@dataclass(frozen=True)
class MiddleSpec:
    """Pre-norm transformer from input latents to target latents (plus the stop latent)."""

    latent_dim: int
    latent_seq_len: int
    layers: int = 4
    num_heads: int = 4
    ffn_multiplier: float = 4.0
    dropout: float = 0.1
    use_rope: bool = True
    rope_base: float = 10000.0
    use_rmsnorm: bool = True
    norm_eps: float = 1e-6
    normalize_latent: bool = True
    use_stop_latent: bool = True
    stop_latent_init: str = "random_normalized"
    stop_latent_seed: int = 1337
    stop_cosine_threshold: float = 0.99


@dataclass(frozen=True)
class LossSpec:
    """Weights of the latent losses: mse_weight x (MSE + stop MSE) + contrastive_weight x InfoNCE."""

    mse_weight: float = 1.0
    contrastive_weight: float = 0.1
    temperature: float = 0.1  # InfoNCE temperature on cosine similarities (not a Config field)


@dataclass(frozen=True)
class AdapterSpec:
    """`prefix_len` learned queries cross-attending over the latents, out in decoder embedding space."""

    latent_dim: int
    prefix_len: int
    num_heads: int = 4
    dropout: float = 0.1
    query_rope: bool = True   # use_prefix_rope
    key_rope: bool = True     # adapter_use_rope
    rope_base: float = 10000.0
    use_rmsnorm: bool = True
    norm_eps: float = 1e-6
    layers: int = 2
    ffn_multiplier: float = 2.0


@dataclass(frozen=True)
class DecoderSpec:
    """Gemma 3 causal LM (hub name or local folder), conditioned through inputs_embeds."""

    model: str
    unfrozen_layers: int = 0
    expected_hidden_dim: Optional[int] = None
    hidden_dim_field: str = "gpt2_hidden_dim"
    model_field: str = "gpt2_model"


@dataclass(frozen=True)
class SamplingSpec:
    """How the decoder generates text."""

    max_new_tokens: int = 256
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50  # 0 disables top-k
    no_repeat_ngram_size: int = 0  # 0 allows repeats; n > 0 never generates the same n-gram twice


@dataclass(frozen=True)
class RuntimeSpec:
    """Where and how the models run. `attn_implementation` is a request (see backends.resolve_attention)."""

    device: str = "cpu"
    attn_implementation: str = "sdpa"
    use_bf16: bool = False
    use_fp16: bool = False
    gradient_checkpointing: bool = False
    compile: bool = False
    compile_mode: str = "default"
    allow_download: bool = False  # never reach a model hub unless asked explicitly


@dataclass(frozen=True)
class ModelSpec:
    encoder: EncoderSpec
    middle: MiddleSpec
    adapter: AdapterSpec
    decoder: DecoderSpec
    loss: LossSpec = field(default_factory=LossSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
