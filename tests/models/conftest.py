"""Tiny models for the model tests: assets built once per session, small specs, CPU only."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from latentbridge.assets import TinyAssets, ensure_tiny_assets
from latentbridge.models.bridge import LatentBridge, build_model
from latentbridge.models.specs import AdapterSpec, DecoderSpec, EncoderSpec, MiddleSpec, ModelSpec, RuntimeSpec

DIM, K, P = 32, 4, 6


@pytest.fixture(scope="session")
def tiny_assets(tiny_root: Path) -> TinyAssets:
    return ensure_tiny_assets(tiny_root, seed=0)  # built once by tests/conftest.py: returns the paths


def tiny_spec(assets: TinyAssets, **sections: dict[str, Any]) -> ModelSpec:
    """A small ModelSpec over the tiny assets; `middle={"layers": 1}` etc. override one section's fields."""
    spec = ModelSpec(
        encoder=EncoderSpec(model=str(assets.encoder_dir), latent_dim=DIM, latent_seq_len=K, unfrozen_layers=1),
        middle=MiddleSpec(latent_dim=DIM, latent_seq_len=K, layers=2, num_heads=4, ffn_multiplier=2.0, dropout=0.0),
        adapter=AdapterSpec(latent_dim=DIM, prefix_len=P, num_heads=4, dropout=0.0),
        decoder=DecoderSpec(model=str(assets.decoder_dir), unfrozen_layers=1),
        runtime=RuntimeSpec(device="cpu", attn_implementation="sdpa"),
    )
    changes = {name: dataclasses.replace(getattr(spec, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(spec, **changes)


def make_model(assets: TinyAssets, seed: int = 0, **sections: dict[str, Any]) -> LatentBridge:
    torch.manual_seed(seed)
    return build_model(tiny_spec(assets, **sections))


@pytest.fixture()
def model(tiny_assets: TinyAssets) -> LatentBridge:
    return make_model(tiny_assets)


DIALOGUES = ["Anna: are we still on for lunch at one? Ben: sure, see you at the cafe.",
             "Tom: I lost my keys again. Mia: check the kitchen drawer.",
             "Sue: party on Friday at my place! Joe: great, I will bring snacks.",
             "Max: hi"]
SUMMARIES = ["Anna and Ben will have lunch at one at the cafe.",
             "Tom lost his keys; Mia suggests the kitchen drawer.",
             "Sue hosts a party on Friday and Joe brings snacks.",
             "Max says hi."]
