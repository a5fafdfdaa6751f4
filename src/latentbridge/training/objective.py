"""What a stage minimises (`StageObjective`, the module DDP wraps) and the modes its modules run in.

The decoder input of a token stage: middle(input latents) when the stage uses the middle, else the target
text's own latents. Latents come from the cache, or are encoded live from the cached text (training/stages.py,
`Stage.uses_cache`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import torch
from torch import nn

from latentbridge.data.batch import (INPUT_SIDE, TARGET_ATTENTION_MASK, TARGET_IDS, TARGET_SIDE, TARGET_TEXT, TEXT,
                                     CacheBatch, LatentKeys)
from latentbridge.errors import UserError
from latentbridge.models.bridge import LatentBridge
from latentbridge.training.stages import Stage


class StageObjective(nn.Module):
    """forward(batch) -> {"loss": what the stage minimises, plus detached components}. Wrapped by DDP."""

    def __init__(self, model: LatentBridge, stage: Stage, max_seq_len: int, max_target_len: int) -> None:
        super().__init__()
        self.model, self.stage = model, stage
        self.max_seq_len, self.max_target_len = max_seq_len, max_target_len

    def forward(self, batch: CacheBatch) -> dict[str, torch.Tensor]:
        model = self.model
        if self.stage.objective == "latent":
            latents, mask = self._latents(batch, TEXT, INPUT_SIDE, self.max_seq_len)
            target, target_mask = self._latents(batch, TARGET_TEXT, TARGET_SIDE, self.max_target_len)
            return model.latent_loss(model.predict(latents, mask), target, target_mask)  # predict: (B, K, D)
        latents, mask = self.decoder_input(batch)
        ce = model.decoder_loss(model.prefix(latents, mask), batch[TARGET_IDS], batch[TARGET_ATTENTION_MASK])
        return {"loss": ce, "ce": ce.detach()}

    def decoder_input(self, batch: CacheBatch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Latents the adapter reads: middle(input latents) when the stage uses the middle, else the target's own."""
        if not self.stage.uses_middle:
            return self._latents(batch, TARGET_TEXT, TARGET_SIDE, self.max_target_len)
        latents, mask = self._latents(batch, TEXT, INPUT_SIDE, self.max_seq_len)
        if "middle" in self.stage.trains:
            return self.model.predict(latents, mask), None
        return self.model.predict_until_stop(latents, mask)   # as at inference: cut at the stop latent

    def _latents(self, batch: CacheBatch, text_key: str, side: LatentKeys, max_len: int):
        """(latents, mask): read from the cache, or encoded live from the cached text when the stage does not use it."""
        if self.stage.uses_cache:
            return batch[side.latents], batch[side.mask]
        if text_key not in batch:
            raise UserError(f"Stage {self.stage.name} encodes text live but the cache holds no text; "
                            "preprocess with --cache-store-text.")
        ids, mask = self.model.encoder.tokenize(batch[text_key], max_len, self.model.device)
        return self.model.encode(ids, mask)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on `device` (other values, such as texts, as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def frozen_subtrees(module: nn.Module) -> list[nn.Module]:
    """The largest submodules with parameters none of which train: kept in eval mode (no dropout) while training."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        return [module]
    return [m for child in module.children() for m in frozen_subtrees(child)]


def set_train_modes(objective: nn.Module, frozen: Iterable[nn.Module]) -> None:
    """What trains in train mode (dropout on); frozen parts (a frozen middle in stage 4, the backbones) in
    eval mode, as at inference. Set at a stage's start and after each validation (which puts the model in
    eval mode), not at every step: that walk over every module cost the tiny latent stage ~2.5 ms a step
    (issue 13; tested equal to setting them every step)."""
    objective.train()
    for module in frozen:
        module.eval()
