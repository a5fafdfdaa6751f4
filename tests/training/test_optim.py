"""Per-part learning rates: each kind of trainable parameter reaches the optimizer in its own group."""

from __future__ import annotations

import pytest
import torch

from latentbridge.assets import ensure_tiny_assets
from latentbridge.models.bridge import set_trainable
from latentbridge.models.specs import LoraSpec
from latentbridge.recipe import part_rates
from latentbridge.training.optim import PartRates, param_groups
from tests.factories import make_model, tiny_config

RATES = PartRates(new=1e-3, encoder=1e-5, decoder=3e-5, lora=2e-4)


@pytest.fixture(scope="module")
def model(tiny_root):
    return make_model(ensure_tiny_assets(tiny_root, seed=0), seed=0, encoder={"unfrozen_layers": 1},
                      decoder={"unfrozen_layers": 1, "lora": LoraSpec(rank=2)})


def test_each_part_gets_its_rate(model):
    set_trainable(model, ("encoder", "compressor", "middle", "adapter", "decoder"))
    groups = param_groups(model, RATES)
    assert [(g["name"], g["lr"]) for g in groups] == [("new", 1e-3), ("encoder", 1e-5), ("decoder", 3e-5),
                                                       ("lora", 2e-4)]
    grouped = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable) and len(set(grouped)) == len(grouped)
    by_name = {id(p): n for n, p in model.named_parameters()}
    lora = [by_name[id(p)] for p in groups[3]["params"]]
    assert lora and all(".lora_" in n for n in lora)
    assert all(by_name[id(p)].startswith(("middle.", "adapter.", "encoder.compressor."))
               for p in groups[0]["params"])


def test_rates_reach_adamw_and_the_schedule_scales_them_together(model):
    set_trainable(model, ("adapter", "decoder"))
    optimizer = torch.optim.AdamW(param_groups(model, RATES), lr=RATES.new)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5e-3, 1.5e-5, 1e-4]  # new, decoder, lora


def test_a_stage_of_new_modules_keeps_one_group(model):
    set_trainable(model, ("middle",))
    assert [g["name"] for g in param_groups(model, RATES)] == ["new"]


def test_config_fields_fall_back_to_learning_rate():
    assert part_rates(tiny_config(learning_rate=1e-3)) == PartRates(1e-3, 1e-3, 1e-3, 1e-3)
    c = tiny_config(learning_rate=1e-3, encoder_learning_rate=1e-5, decoder_learning_rate=2e-5, lora_learning_rate=3e-4)
    assert part_rates(c) == PartRates(1e-3, 1e-5, 2e-5, 3e-4)
