"""The optimizer's parameter groups: one peak learning rate per kind of trainable parameter.

    new      the modules latentbridge adds (compressor, middle, adapter): trained from random init
    encoder  the top encoder layers that train (pretrained: a much smaller rate suits them)
    decoder  the top decoder layers trained in full (pretrained)
    lora     the decoder's LoRA adapters (new, small, on a pretrained layer)

Groups come in that order, only for kinds that train in the stage, so a stage that trains only new modules
has the one group it always had (and its checkpoints resume as before). The schedule scales every group's
rate by the same factor.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

PARTS = ("new", "encoder", "decoder", "lora")


@dataclass(frozen=True)
class PartRates:
    new: float
    encoder: float
    decoder: float
    lora: float


def part_of(name: str) -> str:
    """The kind of a LatentBridge parameter, from its qualified name."""
    if ".lora_" in name:
        return "lora"
    if name.startswith("encoder.backbone."):
        return "encoder"
    if name.startswith("decoder."):
        return "decoder"
    return "new"


def param_groups(model: nn.Module, rates: PartRates) -> list[dict]:
    """AdamW parameter groups of `model`'s trainable parameters: {"name", "params", "lr"} per kind that trains."""
    found: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            found.setdefault(part_of(name), []).append(param)
    return [{"name": part, "params": found[part], "lr": getattr(rates, part)} for part in PARTS if part in found]
