"""Activation checkpointing of backbone layers, trained or frozen, without turning dropout on.

transformers checkpoints a layer only while `layer.training` is true (`GradientCheckpointingLayer`), but the
trainer keeps frozen subtrees in eval mode so that their dropout stays off; in the adapter stages the frozen
decoder is exactly where the prefix's gradient flows through every layer, so its activations were all kept
(829 MiB saved for backward against 33 MiB checkpointed, issue 12). Here the layers are wrapped instead,
whatever their mode: a call with gradients enabled runs under `torch.utils.checkpoint` (non-reentrant) and
is recomputed in backward in the mode it ran in: eval recomputes exactly, train restores the RNG state so
dropout draws the same masks.
"""

from __future__ import annotations

import types
from typing import Any, Iterable, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    forward = type(self).forward  # the class's own forward (transformers' flag stays off: one checkpoint, not two)
    if torch.is_grad_enabled():
        return checkpoint(forward, self, *args, use_reentrant=False, **kwargs)
    return forward(self, *args, **kwargs)


def checkpoint_layers(layers: Iterable[nn.Module]) -> None:
    """Recompute each layer's activations in backward instead of storing them, in train and eval mode alike.
    A bound method (not a closure) so that a deep copy of the model stays checkpointed on its own layers."""
    for layer in layers:
        layer.forward = types.MethodType(_checkpointed_forward, layer)


def is_checkpointed(layer: nn.Module) -> bool:
    forward = layer.__dict__.get("forward")
    return isinstance(forward, types.MethodType) and forward.__func__ is _checkpointed_forward


class SavedForBackward:
    """The bytes autograd saves for backward inside `with SavedForBackward(model) as saved:`, each storage
    once, the parameters of `model` (frozen weights are saved by reference) left out. With checkpointed layers
    it counts what the checkpoints keep (each layer's input), not what their recomputation holds in backward."""

    def __init__(self, model: Optional[nn.Module] = None) -> None:
        self.bytes = 0
        self._seen = {(p.device, p.untyped_storage().data_ptr()) for p in model.parameters()} if model else set()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += storage.nbytes()
        return t

    def __enter__(self) -> "SavedForBackward":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
