"""Prefix adapter: `prefix_len` learned queries attend over the latents -> prefix (B, P, decoder_hidden).

RoPE aligns the two sequences: query j sits at position j and latent i at i * P / K, so prefix
positions prefer the latents of the matching stretch of text. The output is RMS-normalised and scaled
to `target_rms`, the RMS of the decoder's real (scaled) token embeddings: Gemma multiplies embeddings
by sqrt(hidden) inside embed_tokens, and a prefix at another scale is ignored or swamps the text.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latentbridge.models.layers import Block, make_norm
from latentbridge.models.specs import AdapterSpec


class PrefixAdapter(nn.Module):
    def __init__(self, spec: AdapterSpec, decoder_hidden: int, target_rms: float = 1.0) -> None:
        super().__init__()
        self.spec = spec
        D, P = spec.latent_dim, spec.prefix_len
        self.queries = nn.Parameter(torch.randn(P, D) / math.sqrt(D))
        self.blocks = nn.ModuleList(
            Block(D, spec.num_heads, spec.ffn_multiplier, spec.dropout, spec.use_rmsnorm, spec.norm_eps,
                  spec.rope_base, cross=True) for _ in range(spec.layers))
        self.norm = make_norm(D, spec.use_rmsnorm, spec.norm_eps)
        self.out = nn.Linear(D, decoder_hidden)
        self.gain = nn.Parameter(torch.ones(decoder_hidden))
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))

    def forward(self, latents: torch.Tensor, latent_mask: torch.Tensor | None = None) -> torch.Tensor:
        """latents (B, K, D), latent_mask (B, K) -> prefix (B, P, decoder_hidden) at token-embedding scale."""
        B, K, _ = latents.shape
        P = self.spec.prefix_len
        latents = latents.to(self.queries.dtype)
        q_pos = torch.arange(P, device=latents.device) if self.spec.query_rope else None
        k_pos = torch.arange(K, device=latents.device) * (P / K) if self.spec.key_rope else None
        x = self.queries.expand(B, -1, -1)
        for block in self.blocks:
            x = block(x, kv=latents, key_mask=latent_mask, q_pos=q_pos, k_pos=k_pos)
        y = self.out(self.norm(x)).float()                                   # (B, P, H)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)          # unit RMS per vector
        return (y * self.gain * self.target_rms).to(self.out.weight.dtype)
