"""Encoder: the hidden states of a text encoder of any family (models/families.py) -> at most `latent_seq_len`
latents by masked segment mean pooling.

Learned-query attention pooling from random init collapsed in our tiny measurements (every input
decoded to the same text); masked mean pooling of contiguous token segments plus a projection let the
content through, so that is the compressor. Pooling always uses the attention mask: on the sdpa path
padded positions hold garbage (even NaN is possible), so they are zeroed before any arithmetic.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from latentbridge.models.families import Layout, find_layout
from latentbridge.models.pretrained import check_hidden_dim, load_pretrained
from latentbridge.models.specs import EncoderSpec


class SegmentPoolCompressor(nn.Module):
    """(B, T, H) hidden + (B, T) mask -> latents (B, K, D), latent mask (B, K).

    The n valid tokens of a row are split into k = min(K, n) contiguous segments of near-equal length
    (token of rank r goes to segment floor(r * k / n)); each segment is mean-pooled, then
    LayerNorm -> Linear(H, D), L2-normalised when `normalize`. Unused slots are zero with mask False."""

    def __init__(self, hidden_dim: int, latent_dim: int, latent_seq_len: int, normalize: bool) -> None:
        super().__init__()
        self.latent_seq_len = latent_seq_len
        self.normalize = normalize
        self.norm = nn.LayerNorm(hidden_dim)
        self.proj = nn.Linear(hidden_dim, latent_dim)

    def segment_weights(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, K) float: 1 where token t belongs to segment k (padding belongs to none)."""
        mask = attention_mask.bool()
        n = mask.sum(1, keepdim=True).clamp_min(1)                     # (B, 1)
        k = n.clamp_max(self.latent_seq_len)                           # (B, 1)
        rank = (mask.cumsum(1) - 1).clamp_min(0)                       # (B, T) rank among valid tokens
        seg = torch.div(rank * k, n, rounding_mode="floor")            # (B, T) in [0, k)
        onehot = F.one_hot(seg, self.latent_seq_len)                   # (B, T, K)
        return onehot.to(torch.float32) * mask[..., None]

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.segment_weights(attention_mask)                  # (B, T, K)
        counts = weights.sum(1)                                         # (B, K)
        hidden = hidden.float().masked_fill(~attention_mask.bool()[..., None], 0.0)
        pooled = torch.einsum("btk,bth->bkh", weights, hidden) / counts.clamp_min(1)[..., None]  # (B, K, H)
        pooled = pooled.to(self.proj.weight.dtype)
        latents = self.proj(self.norm(pooled))                          # (B, K, D)
        if self.normalize:
            latents = F.normalize(latents, dim=-1)
        latent_mask = counts > 0
        return latents * latent_mask[..., None], latent_mask


def load_encoder_backbone(spec: EncoderSpec, attn_implementation: str, allow_download: bool = False,
                          dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(the encoder model, tokenizer) through AutoModel/AutoTokenizer.from_pretrained; hidden size checked."""
    tokenizer = load_pretrained(AutoTokenizer, spec.model, spec.model_field, "tokenizer", allow_download)
    config = load_pretrained(AutoConfig, spec.model, spec.model_field, "encoder", allow_download)
    # ModernBERT's own torch.compile of its layers breaks freezing and checkpointing on the releases that
    # still have it; 5.x dropped the option (its config has no such attribute), so it is set where it exists.
    if hasattr(config, "reference_compile"):
        config.reference_compile = False
    backbone = load_pretrained(AutoModel, spec.model, spec.model_field, "encoder", allow_download,
                               config=config, attn_implementation=attn_implementation, dtype=dtype)
    check_hidden_dim(backbone.config.hidden_size, spec.expected_hidden_dim, spec.hidden_dim_field, spec.model)
    return backbone, tokenizer


class LatentEncoder(nn.Module):
    """encoder(input_ids, attention_mask) -> (latents (B, K, D), latent_mask (B, K))."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, spec: EncoderSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.spec = spec
        self.layout: Layout = find_layout(backbone, spec.model, "encoder")
        self.compressor = SegmentPoolCompressor(backbone.config.hidden_size, spec.latent_dim,
                                                spec.latent_seq_len, spec.normalize_latent)

    @property
    def layers(self) -> nn.ModuleList:
        return self.backbone.get_submodule(self.layout.blocks)

    def trainable_backbone_modules(self) -> list[nn.Module]:
        """The top `unfrozen_layers` layers and the final norm (where the family has one): what may train in
        encoder phases."""
        n = self.spec.unfrozen_layers
        if n <= 0:
            return []
        norm = [] if self.layout.final_norm is None else [self.backbone.get_submodule(self.layout.final_norm)]
        return list(self.layers[-n:]) + norm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(grad):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.compressor(hidden, attention_mask)

    def tokenize(self, texts: list[str], max_len: int,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) with the encoder's special tokens, right-padded, truncated to max_len."""
        batch = self.tokenizer(texts, max_length=max_len, truncation=True, padding=True, return_tensors="pt")
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)
