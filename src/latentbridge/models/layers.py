"""Building blocks shared by the middle models and the prefix adapter: norms, RoPE, attention, FFN."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


def make_norm(dim: int, use_rmsnorm: bool, eps: float) -> nn.Module:
    return RMSNorm(dim, eps) if use_rmsnorm else nn.LayerNorm(dim, eps=eps)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (T, head_dim/2) for (possibly fractional) positions (T,)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last dim; x: (B, nh, T, hs)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention (self or cross) with optional RoPE on queries and/or keys."""

    def __init__(self, dim: int, num_heads: int, dropout: float, rope_base: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide dim {dim}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_base = rope_base
        self.dropout = dropout
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, key_mask: Optional[torch.Tensor] = None,
                q_pos: Optional[torch.Tensor] = None, k_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, Tq, D) queries; kv: (B, Tk, D); key_mask: (B, Tk) bool, True = attend.
        q_pos / k_pos: positions (Tq,) / (Tk,) for RoPE, or None for no rotation on that side."""
        q, k, v = self._heads(self.q(x)), self._heads(self.k(kv)), self._heads(self.v(kv))
        if q_pos is not None:
            q = apply_rope(q, *rope_cos_sin(q_pos, self.head_dim, self.rope_base))
        if k_pos is not None:
            k = apply_rope(k, *rope_cos_sin(k_pos, self.head_dim, self.rope_base))
        mask = None
        if key_mask is not None:
            key_mask = key_mask.bool()
            # a row with no valid key would give NaN; let it attend everywhere (its output is masked later)
            key_mask = key_mask | ~key_mask.any(dim=1, keepdim=True)
            mask = key_mask[:, None, None, :]  # (B, 1, 1, Tk)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        B, _, Tq, _ = y.shape
        return self.o(y.transpose(1, 2).reshape(B, Tq, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(F.gelu(self.up(x))))


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x), norm(kv)), then x + ffn(norm(x)). kv=None means self-attention."""

    def __init__(self, dim: int, num_heads: int, ffn_multiplier: float, dropout: float,
                 use_rmsnorm: bool, eps: float, rope_base: float, cross: bool = False) -> None:
        super().__init__()
        self.norm_attn = make_norm(dim, use_rmsnorm, eps)
        self.norm_kv = make_norm(dim, use_rmsnorm, eps) if cross else None
        self.attn = Attention(dim, num_heads, dropout, rope_base)
        self.norm_ffn = make_norm(dim, use_rmsnorm, eps)
        self.ffn = FeedForward(dim, max(1, int(round(dim * ffn_multiplier))), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, kv: Optional[torch.Tensor] = None, key_mask: Optional[torch.Tensor] = None,
                q_pos: Optional[torch.Tensor] = None, k_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.norm_attn(x)
        kv = h if kv is None else self.norm_kv(kv)
        x = x + self.drop(self.attn(h, kv, key_mask, q_pos, k_pos))
        return x + self.drop(self.ffn(self.norm_ffn(x)))
