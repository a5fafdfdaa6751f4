"""The one place that maps a Config to the model specs (src/latentbridge/models never reads the Config)."""

from __future__ import annotations

from typing import Optional

from latentbridge.config import Config
from latentbridge.models.specs import (AdapterSpec, DecoderSpec, EncoderSpec, LossSpec, MiddleSpec, ModelSpec, RuntimeSpec,
                              SamplingSpec)


def encoder_spec(c: Config) -> EncoderSpec:
    return EncoderSpec(model=c.modernbert_model, latent_dim=c.latent_dim, latent_seq_len=c.latent_seq_len,
                       normalize_latent=c.normalize_latent, unfrozen_layers=c.num_encoder_unfrozen_layers,
                       expected_hidden_dim=c.modernbert_hidden_dim)


def middle_spec(c: Config) -> MiddleSpec:
    return MiddleSpec(latent_dim=c.latent_dim, latent_seq_len=c.latent_seq_len, layers=c.middle_transformer_layers,
                      num_heads=c.middle_num_heads, ffn_multiplier=c.middle_ffn_multiplier, dropout=c.middle_dropout,
                      use_rope=c.middle_use_rope, rope_base=float(c.rope_base), use_rmsnorm=c.use_rmsnorm,
                      norm_eps=c.rmsnorm_eps, normalize_latent=c.normalize_latent, use_stop_latent=c.use_stop_latent,
                      stop_latent_init=c.stop_latent_init, stop_latent_seed=c.stop_latent_seed,
                      stop_cosine_threshold=c.stop_latent_cosine_threshold)


def adapter_spec(c: Config) -> AdapterSpec:
    return AdapterSpec(latent_dim=c.latent_dim, prefix_len=c.prefix_len, num_heads=c.adapter_num_heads,
                       dropout=c.adapter_dropout, query_rope=c.use_prefix_rope, key_rope=c.adapter_use_rope,
                       rope_base=float(c.rope_base), use_rmsnorm=c.use_rmsnorm, norm_eps=c.rmsnorm_eps)


def decoder_spec(c: Config) -> DecoderSpec:
    return DecoderSpec(model=c.gpt2_model, unfrozen_layers=c.decoder_unfrozen_layers,
                       expected_hidden_dim=c.gpt2_hidden_dim)


def loss_spec(c: Config) -> LossSpec:
    return LossSpec(mse_weight=c.latent_mse_weight, contrastive_weight=c.contrastive_weight)


def runtime_spec(c: Config, device: Optional[str] = None) -> RuntimeSpec:
    """`device`: the resolved device (backends.resolve_device(c.device)); defaults to that resolution."""
    if device is None:
        from latentbridge.models.backends import resolve_device

        device, _ = resolve_device(c.device)
    return RuntimeSpec(device=device, attn_implementation=c.attn_implementation, use_bf16=c.use_bf16,
                       use_fp16=c.use_fp16, gradient_checkpointing=c.use_gradient_checkpointing,
                       compile=c.use_torch_compile, compile_mode=c.torch_compile_mode)


def sampling_spec(c: Config) -> SamplingSpec:
    return SamplingSpec(max_new_tokens=c.max_generation_length, do_sample=c.do_sample, temperature=c.temperature,
                        top_p=c.top_p, top_k=c.top_k, no_repeat_ngram_size=c.no_repeat_ngram_size)


def model_spec(c: Config, device: Optional[str] = None) -> ModelSpec:
    return ModelSpec(encoder=encoder_spec(c), middle=middle_spec(c), adapter=adapter_spec(c), decoder=decoder_spec(c),
                     loss=loss_spec(c), runtime=runtime_spec(c, device))
