"""How close the middle's predicted latents are to the target text's own latents.

Per valid target slot (the slots the target text fills; predictions beyond them are ignored):
    mse       mean over dims of (pred - target)^2, averaged over slots (the middle's training MSE)
    cosine    cosine(pred, target), averaged over slots
Per example, in batches of the eval batch size:
    retrieval_top1   the example's mean predicted latent (over its target slots, unit-normalised) is
                     closer by cosine to its own mean target latent than to every other example's in
                     the batch; `retrieval_chance` is the mean of 1 / batch size (a random guess)
    length_accuracy  the middle stopped (stop latent) after exactly as many latents as the target has;
                     reported only when the predicted lengths are given
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LatentMetrics:
    mse: float
    cosine: float
    retrieval_top1: float
    retrieval_chance: float
    length_accuracy: Optional[float]
    n_examples: int
    n_slots: int

    def as_dict(self) -> dict:
        return asdict(self)


def _pad_to(x: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[1] >= k:
        return x[:, :k], mask[:, :k]
    pad = k - x.shape[1]
    return F.pad(x, (0, 0, 0, pad)), F.pad(mask, (0, pad))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, K, D), (B, K) -> (B, D) mean of the valid slots (zeros for a row without any)."""
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp_min(1)


class LatentMetricsAccumulator:
    """Feed batches with `update`, read the totals with `result`."""

    def __init__(self) -> None:
        self.sq_err = 0.0
        self.cos = 0.0
        self.slots = 0
        self.hits = 0
        self.chance = 0.0
        self.examples = 0
        self.length_hits = 0
        self.length_seen = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
               pred_mask: Optional[torch.Tensor] = None) -> None:
        """pred (B, K, D); target (B, K_t, D) with target_mask (B, K_t); pred_mask (B, K): the slots kept
        before the stop latent (for length accuracy)."""
        pred, target = pred.float(), target.float().to(pred.device)
        target, mask = _pad_to(target, target_mask.bool().to(pred.device), pred.shape[1])
        B = pred.shape[0]
        self.sq_err += float(((pred - target) ** 2).mean(-1)[mask].sum())
        self.cos += float(F.cosine_similarity(pred, target, dim=-1)[mask].sum())
        self.slots += int(mask.sum())
        p = F.normalize(masked_mean(pred, mask), dim=-1)                 # (B, D)
        t = F.normalize(masked_mean(target, mask), dim=-1)               # (B, D)
        self.hits += int(((p @ t.T).argmax(1) == torch.arange(B, device=p.device)).sum())
        self.chance += 1.0  # B examples, each with chance 1 / B
        self.examples += B
        if pred_mask is not None:
            self.length_hits += int((pred_mask.bool().sum(1) == mask.sum(1)).sum())
            self.length_seen += B

    def result(self) -> LatentMetrics:
        n, s = max(1, self.examples), max(1, self.slots)
        return LatentMetrics(
            mse=self.sq_err / s, cosine=self.cos / s, retrieval_top1=self.hits / n,
            retrieval_chance=self.chance / n if self.examples else 0.0,
            length_accuracy=(self.length_hits / self.length_seen) if self.length_seen else None,
            n_examples=self.examples, n_slots=self.slots)


def latent_metrics(pred: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
                   pred_mask: Optional[torch.Tensor] = None) -> LatentMetrics:
    """The metrics of one batch (retrieval within that batch)."""
    acc = LatentMetricsAccumulator()
    acc.update(pred, target, target_mask, pred_mask)
    return acc.result()
