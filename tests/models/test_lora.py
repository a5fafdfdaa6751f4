"""LoRA on the decoder (models/lora.py): where the adapters go, what trains and is saved, and the rules."""

from __future__ import annotations

import pytest
import torch

from latentbridge.errors import UserError
from latentbridge.models.bridge import set_trainable
from latentbridge.models.families import LLAMA_PROJECTIONS
from latentbridge.models.specs import LoraSpec
from tests.factories import DIALOGUES, SUMMARIES, make_model

LORA = LoraSpec(rank=4, alpha=8.0)  # no target modules: Gemma's own projections (models/families.py)


def decoder_loss(model) -> torch.Tensor:
    ids, mask = model.encoder.tokenize(DIALOGUES, 64)
    latents, latent_mask = model.encode(ids, mask)
    target_ids, target_mask = model.decoder.target_ids(SUMMARIES, 32)
    return model.decoder_loss(model.prefix(latents, latent_mask), target_ids, target_mask)


def test_lora_goes_on_the_layers_below_the_fully_trained_ones(tiny_assets):
    model = make_model(tiny_assets, decoder={"lora": LORA, "unfrozen_layers": 1})  # the tiny Gemma has 2 layers
    names = set(set_trainable(model, {"decoder"}))
    lora = {n for n in names if ".lora_" in n}
    assert lora and all(n.startswith("decoder.model.model.layers.0.") for n in lora)
    assert {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for n in lora} == set(LLAMA_PROJECTIONS)
    assert {n for n in names if ".lora_" not in n} == {n for n, _ in model.named_parameters()
                                                       if n.startswith(("decoder.model.model.layers.1.",
                                                                        "decoder.model.model.norm."))}


def test_only_the_adapters_train_and_are_saved_not_the_frozen_base_weights(tiny_assets):
    model = make_model(tiny_assets, decoder={"lora": LORA, "unfrozen_layers": 0})
    model.train()
    names = set(set_trainable(model, {"adapter", "decoder"}))
    decoder_names = {n for n in names if n.startswith("decoder.")}
    assert decoder_names and all(".lora_A." in n or ".lora_B." in n for n in decoder_names)
    assert len(decoder_names) == 2 * len(LLAMA_PROJECTIONS) * 2  # A and B, 7 projections, 2 layers
    decoder_loss(model).backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == names
    saved = model.trainable_state_dict()
    assert {k for k in saved if k.startswith("decoder.")} == decoder_names  # no base_layer weights
    assert not any("base_layer" in k for k in saved)


def test_fresh_adapters_leave_the_decoder_unchanged(tiny_assets):
    plain = make_model(tiny_assets, seed=0)
    lora = make_model(tiny_assets, seed=0, decoder={"lora": LORA, "unfrozen_layers": 0})
    for part in ("adapter", "encoder"):  # the same small parts (LoRA's init drew from the RNG before them)
        getattr(lora, part).load_state_dict(getattr(plain, part).state_dict())
    with torch.no_grad():
        assert torch.equal(decoder_loss(plain), decoder_loss(lora))  # lora_B starts at zero


def test_a_trained_adapter_round_trips_through_the_trainable_state(tiny_assets):
    model = make_model(tiny_assets, decoder={"lora": LORA, "unfrozen_layers": 0})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_()
        before = decoder_loss(model)
    again = make_model(tiny_assets, seed=5, decoder={"lora": LORA, "unfrozen_layers": 0})
    again.load_trainable_state_dict(model.trainable_state_dict())
    with torch.no_grad():
        assert torch.equal(decoder_loss(again), before)


def test_lora_needs_a_layer_that_does_not_train_in_full(tiny_assets):
    with pytest.raises(UserError, match=r"decoder_unfrozen_layers \(2\) trains all 2 decoder layers.*--decoder-lora-rank 0"):
        make_model(tiny_assets, decoder={"lora": LORA, "unfrozen_layers": 2})


def test_target_modules_that_match_nothing_are_a_user_error(tiny_assets):
    with pytest.raises(UserError, match=r"(?s)names no Linear module.*q_proj.*--decoder-lora-target-modules"):
        make_model(tiny_assets, decoder={"lora": LoraSpec(rank=4, target_modules=("qkv",)), "unfrozen_layers": 0})
