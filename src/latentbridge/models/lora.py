"""LoRA on the decoder, through peft: adapters injected in place into the Gemma layers that do not train in full.

`peft.inject_adapter_in_model` wraps each targeted `nn.Linear` of the chosen layers in a peft LoRA layer
without wrapping the whole model in a `PeftModel`: the Linear's weight moves to `<name>.base_layer.weight`
(frozen, never saved) and the adapters are `<name>.lora_A.default.weight` / `<name>.lora_B.default.weight`.
Every other state-dict key, the fully trained top layers' included, stays what it was, so a model file
holds the adapters beside the other trainable weights and loads like any other.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from latentbridge.errors import UserError
from latentbridge.models.specs import LoraSpec


def add_lora(model: nn.Module, spec: LoraSpec, layers: Sequence[int]) -> list[nn.Module]:
    """Inject LoRA adapters into `spec.target_modules` of the decoder layers `layers` (indices into
    `model.model.layers`); returns the adapter modules (what trains). UserError when no module matches."""
    # peft takes 2.4 s to import on top of transformers (measured): only runs with LoRA pay for it
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, bias="none",
                        target_modules=list(spec.target_modules), layers_to_transform=list(layers),
                        layers_pattern="layers")
    try:
        inject_adapter_in_model(config, model)
    except ValueError as error:
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise UserError(f"decoder_lora_target_modules {','.join(spec.target_modules)!r} names no Linear module of "
                        f"the decoder's layers ({error}). Its layers have: {', '.join(names)}; set "
                        "--decoder-lora-target-modules to some of them.") from None
    return [part for m in model.modules() if isinstance(m, LoraLayer) for part in (m.lora_A, m.lora_B)]


def lora_layer_indices(num_layers: int, unfrozen_layers: int) -> range:
    """The layers LoRA goes on: every one below the `unfrozen_layers` top layers, which train in full.
    UserError when the unfrozen ones are all of them."""
    if unfrozen_layers >= num_layers:
        raise UserError(f"decoder_lora_rank is set, but decoder_unfrozen_layers ({unfrozen_layers}) trains all "
                        f"{num_layers} decoder layers in full, leaving none for LoRA (it goes on the layers below "
                        "the unfrozen ones). Lower --decoder-unfrozen-layers, or set --decoder-lora-rank 0.")
    return range(num_layers - unfrozen_layers)

