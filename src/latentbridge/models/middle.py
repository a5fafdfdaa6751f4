"""The middle: input latents (B, K, D) -> predicted target latents (B, K, D), plus a stop latent.

Two architectures share the stop latent, the losses and generation (`LatentMiddle`); `build_middle`
picks one by `MiddleSpec.architecture`:

- `MiddleTransformer` (the model): the sequence is [input latents ; K learned output slots]; pre-norm
  self-attention blocks (RoPE over the 2K positions) run over it with padded input latents masked out
  as keys, and slot i reads out target latent i.
- `MiddleMLP` (the seed's legacy MLP middle, an ablation baseline): residual MLP blocks over the K
  input latents flattened into one vector.

With the stop latent on, the slot just after the last real target latent is trained towards it, and
`generate` cuts the prediction at the first slot whose cosine to it reaches the threshold.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from latentbridge.models.layers import Block, FeedForward, make_norm
from latentbridge.models.specs import STOP_LATENT_INITS, LossSpec, MiddleSpec


def init_stop_latent(kind: str, dim: int, seed: int) -> torch.Tensor:
    """The stop latent's initial value: deterministic for (kind, dim, seed), independent of global RNG."""
    if kind not in STOP_LATENT_INITS:
        raise ValueError(f"stop_latent_init {kind!r} is not one of {STOP_LATENT_INITS}")
    if kind == "zeros":
        return torch.zeros(dim)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=g)
    return F.normalize(v, dim=0) if kind == "random_normalized" else v / math.sqrt(dim)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Near-unit length with a gradient that stays finite at the origin (zeros init)."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)


class LatentMiddle(nn.Module):
    """What every middle shares: the stop latent, the latent losses and generation cut at the stop latent.
    A subclass builds its layers, then calls `_add_stop_latent()`, and implements
    forward(latents (B, K_in, D), latent_mask (B, K_in)) -> (B, K, D)."""

    def __init__(self, spec: MiddleSpec) -> None:
        super().__init__()
        self.spec = spec

    def _add_stop_latent(self) -> None:
        """After the layers: parameter order fixes the optimizer state's layout, so the transformer keeps
        the order step checkpoints were written with before the MLP middle existed."""
        spec = self.spec
        if spec.use_stop_latent:
            self.stop_latent = nn.Parameter(init_stop_latent(spec.stop_latent_init, spec.latent_dim,
                                                             spec.stop_latent_seed))
        else:
            self.register_parameter("stop_latent", None)

    def stop_target(self) -> torch.Tensor:
        """The stop latent as the slots are trained to predict it (unit length when latents are normalised)."""
        return _unit(self.stop_latent) if self.spec.normalize_latent else self.stop_latent

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return F.normalize(y, dim=-1) if self.spec.normalize_latent else y

    def latent_loss(self, pred: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
                    loss: LossSpec) -> dict[str, torch.Tensor]:
        """{"loss", "mse", "contrastive", "stop"}: mse_weight x (MSE + stop MSE) + contrastive_weight x InfoNCE.

        MSE is the mean squared error over the valid target slots. InfoNCE treats each valid slot of the
        batch as a query whose positive is the target at the same slot and whose negatives are every other
        valid target in the batch (cosine / temperature). The stop term is the MSE between the slot after
        the last target latent (where one exists, i.e. fewer than K targets) and the stop latent."""
        K = pred.shape[1]
        target = target.to(pred.dtype)
        if target.shape[1] < K:  # pad targets to K slots
            pad = K - target.shape[1]
            target = F.pad(target, (0, 0, 0, pad))
            target_mask = F.pad(target_mask, (0, pad))
        mask = target_mask.bool()
        n_valid = mask.sum().clamp_min(1)
        mse = ((pred - target) ** 2).mean(-1).masked_fill(~mask, 0).sum() / n_valid

        p = F.normalize(pred[mask].float(), dim=-1)                          # (N, D)
        t = F.normalize(target[mask].float(), dim=-1)                        # (N, D)
        if p.shape[0] > 1:
            logits = p @ t.T / loss.temperature
            contrastive = F.cross_entropy(logits, torch.arange(p.shape[0], device=p.device))
        else:
            contrastive = pred.sum() * 0.0

        stop = pred.sum() * 0.0
        if self.stop_latent is not None:
            n = mask.sum(1)                                                  # (B,) targets per row
            has_stop = n < K
            if has_stop.any():
                rows = has_stop.nonzero(as_tuple=True)[0]
                stop = ((pred[rows, n[rows]] - self.stop_target()) ** 2).mean()
        total = loss.mse_weight * (mse + stop) + loss.contrastive_weight * contrastive
        return {"loss": total, "mse": mse.detach(), "contrastive": contrastive.detach(), "stop": stop.detach()}

    @torch.no_grad()
    def generate(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted latents (B, K, D), mask (B, K)): each row ends before its first slot with
        cosine >= stop_cosine_threshold to the stop latent, or at K. At least one latent is kept."""
        pred = self(latents, latent_mask)
        B, K, _ = pred.shape
        keep = torch.ones(B, K, dtype=torch.bool, device=pred.device)
        if self.stop_latent is not None:
            cos = F.cosine_similarity(pred.float(), self.stop_latent.float()[None, None, :], dim=-1)  # (B, K)
            hit = cos >= self.spec.stop_cosine_threshold
            hit[:, 0] = False
            keep = hit.long().cumsum(1) == 0
        return pred * keep[..., None], keep


class MiddleTransformer(LatentMiddle):
    def __init__(self, spec: MiddleSpec) -> None:
        super().__init__(spec)
        D, K = spec.latent_dim, spec.latent_seq_len
        self.slots = nn.Parameter(torch.randn(K, D) / math.sqrt(D))
        self.blocks = nn.ModuleList(
            Block(D, spec.num_heads, spec.ffn_multiplier, spec.dropout, spec.use_rmsnorm, spec.norm_eps,
                  spec.rope_base) for _ in range(spec.layers))
        self.norm = make_norm(D, spec.use_rmsnorm, spec.norm_eps)
        self.out = nn.Linear(D, D)
        self._add_stop_latent()

    def forward(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """latents (B, K_in, D), latent_mask (B, K_in) -> predicted target latents (B, K, D)."""
        B, K_in, _ = latents.shape
        K = self.spec.latent_seq_len
        if latent_mask is None:
            latent_mask = torch.ones(B, K_in, dtype=torch.bool, device=latents.device)
        x = torch.cat([latents.to(self.slots.dtype), self.slots.expand(B, -1, -1)], dim=1)  # (B, K_in+K, D)
        key_mask = torch.cat([latent_mask.bool(), latent_mask.new_ones(B, K, dtype=torch.bool)], dim=1)
        pos = torch.arange(K_in + K, device=x.device) if self.spec.use_rope else None
        for block in self.blocks:
            x = block(x, key_mask=key_mask, q_pos=pos, k_pos=pos)
        return self._output(self.out(self.norm(x[:, K_in:])))               # (B, K, D)


class MiddleMLP(LatentMiddle):
    """The seed's legacy MLP middle, an ablation baseline: `mlp_layers` pre-norm residual blocks
    h + FFN(norm(h)), each `mlp_hidden_dim` wide, over h = the K input latents flattened to (B, K*D).

    Flattened rather than one MLP per slot: a per-slot MLP can neither move content between positions
    (every summary latent depends on the whole dialogue) nor place the stop latent, whose slot depends
    on how long the target is, not on any one input latent. The residual stream carries the input
    latents through, so the blocks learn a correction to "target = input". Inputs are padded to K
    slots (the encoder gives at most K) and masked slots zeroed, so padding never reaches the output."""

    def __init__(self, spec: MiddleSpec) -> None:
        super().__init__(spec)
        width = spec.latent_seq_len * spec.latent_dim
        self.norms = nn.ModuleList(make_norm(width, spec.use_rmsnorm, spec.norm_eps) for _ in range(spec.mlp_layers))
        self.ffns = nn.ModuleList(FeedForward(width, spec.mlp_hidden_dim, spec.dropout) for _ in range(spec.mlp_layers))
        self.drop = nn.Dropout(spec.dropout)
        self._add_stop_latent()

    def forward(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """latents (B, K_in, D) with K_in <= K, latent_mask (B, K_in) -> predicted target latents (B, K, D)."""
        B, K_in, D = latents.shape
        K = self.spec.latent_seq_len
        if K_in > K:
            raise ValueError(f"the mlp middle reads at most latent_seq_len={K} latents, got {K_in}")
        if latent_mask is not None:
            latents = latents * latent_mask[..., None].to(latents.dtype)
        h = F.pad(latents.to(self.ffns[0].up.weight.dtype), (0, 0, 0, K - K_in)).reshape(B, K * D)
        for norm, ffn in zip(self.norms, self.ffns):
            h = h + self.drop(ffn(norm(h)))
        return self._output(h.view(B, K, D))


MIDDLES: dict[str, type[LatentMiddle]] = {"transformer": MiddleTransformer, "mlp": MiddleMLP}


def build_middle(spec: MiddleSpec) -> LatentMiddle:
    """The middle `spec.architecture` names (a Config's middle_architecture)."""
    if spec.architecture not in MIDDLES:
        raise ValueError(f"middle architecture {spec.architecture!r} is not one of {tuple(MIDDLES)}")
    return MIDDLES[spec.architecture](spec)
