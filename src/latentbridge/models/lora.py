"""LoRA on the decoder, through peft: adapters injected in place into the decoder layers that do not train in full.

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
from latentbridge.models.families import Layout, family
from latentbridge.models.specs import LoraSpec


def target_modules(spec: LoraSpec, layout: Layout) -> tuple[str, ...]:
    """The modules LoRA adapts: the spec's, or when it names none the family's (models/families.py)."""
    if spec.target_modules:
        return spec.target_modules
    row = family(layout.model_type)
    if row is None or not row.lora_targets:
        raise UserError(f"decoder_lora_target_modules is auto, but latentbridge has no default LoRA targets for "
                        f"decoders of model_type {layout.model_type!r}. Set --decoder-lora-target-modules to names "
                        "of the Linear modules in its layers (for Llama-style blocks q_proj,v_proj).")
    return row.lora_targets


def add_lora(model: nn.Module, layout: Layout, spec: LoraSpec, layers: Sequence[int]) -> list[nn.Module]:
    """Inject LoRA adapters into the target modules (`target_modules`) of the decoder blocks `layers` (indices into
    the block list `layout.blocks`); returns the adapter modules (what trains). UserError when no module matches."""
    # peft takes 2.4 s to import on top of transformers (measured): only runs with LoRA pay for it
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    targets = target_modules(spec, layout)
    conv1d = any(type(m).__name__ == "Conv1D" for name, m in model.named_modules() if name.endswith(targets))
    # peft finds the layer index after this name in each module path ("layers" for most, "h" for GPT-2); GPT-2's
    # Conv1D stores its weight transposed (fan_in_fan_out)
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, bias="none",
                        target_modules=list(targets), layers_to_transform=list(layers),
                        layers_pattern=layout.blocks.rsplit(".", 1)[-1], fan_in_fan_out=conv1d)
    try:
        inject_adapter_in_model(config, model)
    except ValueError as error:
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _is_linear(m)})
        raise UserError(f"decoder_lora_target_modules {','.join(targets)!r} names no Linear module of "
                        f"the decoder's layers ({error}). Its layers have: {', '.join(names)}; set "
                        "--decoder-lora-target-modules to some of them.") from None
    return [part for m in model.modules() if isinstance(m, LoraLayer) for part in (m.lora_A, m.lora_B)]


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # GPT-2's transposed Linear


def lora_layer_indices(num_layers: int, unfrozen_layers: int) -> range:
    """The layers LoRA goes on: every one below the `unfrozen_layers` top layers, which train in full.
    UserError when the unfrozen ones are all of them."""
    if unfrozen_layers >= num_layers:
        raise UserError(f"decoder_lora_rank is set, but decoder_unfrozen_layers ({unfrozen_layers}) trains all "
                        f"{num_layers} decoder layers in full, leaving none for LoRA (it goes on the layers below "
                        "the unfrozen ones). Lower --decoder-unfrozen-layers, or set --decoder-lora-rank 0.")
    return range(num_layers - unfrozen_layers)

