"""The model's trained tensors, whole: gathered from the ranks' shards when the layers are sharded (every rank
calls), loaded back into them, and saved as a model file (a stage's best weights, the hand-off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from latentbridge.models.bridge import LatentBridge
from latentbridge.training import sharding
from latentbridge.training.checkpoint import AsyncCheckpointer


class TrainedTensors:
    def __init__(self, model: LatentBridge, checkpointer: AsyncCheckpointer, *, config: Mapping[str, Any],
                 sharded: bool) -> None:
        self.model, self.checkpointer, self.config, self.sharded = model, checkpointer, config, sharded

    def state(self) -> dict[str, torch.Tensor]:
        state = self.model.trainable_state_dict()
        return sharding.gathered(state) if self.sharded else state

    def load(self, state: Mapping[str, torch.Tensor]) -> None:
        if self.sharded:
            sharding.load_sharded(self.model, state)
        else:
            self.model.load_trainable_state_dict(state)

    def save(self, path: Path, global_step: int, stage_name: str) -> None:
        """A model file of the trained tensors, with the run's config inside."""
        self.checkpointer.save_model(path, self.state(), config=self.config, step=global_step, stage=stage_name)
