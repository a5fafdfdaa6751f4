"""recipe.py: the Config turned into each layer's specs, stage plan and fingerprints."""

from __future__ import annotations

import sys

import pytest
import torch

from latentbridge import recipe
from latentbridge.models import backends
from latentbridge.errors import UserError
from tests.factories import tiny_config


def test_caps_map_to_the_largest_stage_need():
    config = tiny_config(max_train_samples=None, pretrain_middle_max_samples_wikitext=100,
                         pretrain_adapter_max_samples_wikitext=300, pretrain_middle_max_samples_arxiv=50,
                         pretrain_adapter_max_samples_arxiv=None, pretrain_adapter_max_samples=200,
                         finetune_middle_max_samples=10, finetune_adapter_max_samples=20)
    spec = recipe.data_spec(config)
    caps = {s.name: s.max_samples for s in spec.pretrain}
    assert caps == {"wikitext": 200, "arxiv": 200, "english": None}  # stage 2 has no English cap of its own
    assert spec.dialogue_max_train == 20 and spec.pretrain_max_train is None
    assert recipe.cache_spec(config).int8 is config.cache_store_embeddings_int8


def test_each_stage_budget_carries_the_caps_its_rows_honour():
    config = tiny_config(max_train_samples=40, finetune_middle_max_samples=100, finetune_adapter_max_samples=10,
                         pretrain_middle_max_samples=60, pretrain_middle_max_samples_arxiv=5,
                         pretrain_adapter_batch_size=7, num_epochs=2)
    stages = {s.name: s for s in recipe.plan(config)}
    assert stages["finetune_middle"].max_samples == 40 and stages["finetune_adapter"].max_samples == 10
    assert stages["pretrain_middle"].max_samples == 60  # max_train_samples caps each source, not the total
    assert dict(stages["pretrain_middle"].dataset_caps) == {"arxiv": 5, "english": 40, "wikitext": 40}
    assert stages["pretrain_adapter"].batch_size == 7 and stages["finetune_adapter"].batch_size == config.batch_size
    assert all(s.epochs <= 2 for s in stages.values())


def test_live_encoding_stages_need_cached_text():
    with pytest.raises(UserError, match="--cache-store-text"):
        recipe.plan(tiny_config(training_phase="phase2"))
    stages = recipe.plan(tiny_config(training_phase="phase2", cache_store_text=True))
    assert [s.name for s in stages] == ["train_encoder"]


def test_model_spec_takes_every_part_from_the_config():
    config = tiny_config(latent_dim=32, prefix_len=5, middle_transformer_layers=3, decoder_unfrozen_layers=1)
    spec = recipe.model_spec(config)
    assert (spec.encoder.latent_dim, spec.middle.latent_dim, spec.adapter.latent_dim) == (32, 32, 32)
    assert spec.adapter.prefix_len == 5 and spec.middle.layers == 3 and spec.decoder.unfrozen_layers == 1
    assert spec.runtime.device == "cpu" and recipe.sampling_spec(config).max_new_tokens == config.max_generation_length


@pytest.mark.parametrize("flags", [{"use_bf16": True}, {"use_fp16": True}, {"use_bf16": True, "use_fp16": True}])
def test_a_half_precision_request_on_cpu_keeps_the_fp32_cache_fingerprint(flags):
    fp32 = recipe.cache_fingerprint_parts(tiny_config(), ("dialogue",))
    asked = recipe.cache_fingerprint_parts(tiny_config(**flags), ("dialogue",))
    assert fp32 == asked and fp32["encoder_precision"] == ["cpu", "fp32", "sdpa"]


def test_the_cache_fingerprint_follows_the_precision_the_device_gives(monkeypatch):
    """On a GPU with bf16 the same request changes what the encoder computes, and so the fingerprint."""
    monkeypatch.setattr(recipe, "resolved_device", lambda c: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    fp32 = recipe.cache_fingerprint_parts(tiny_config(device="cuda"), ("dialogue",))
    bf16 = recipe.cache_fingerprint_parts(tiny_config(device="cuda", use_bf16=True), ("dialogue",))
    assert fp32["encoder_precision"][:2] == ["cuda", "fp32"] and bf16["encoder_precision"][:2] == ["cuda", "bf16"]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # an old GPU: fp32 after all
    assert recipe.cache_fingerprint_parts(tiny_config(device="cuda", use_bf16=True), ("dialogue",)) == fp32


def test_the_cache_fingerprint_follows_the_attention_backend_the_device_gives(monkeypatch):
    """flash_attention_2 asked for on a CPU runs sdpa, so it keeps the sdpa cache; on CUDA with the package and
    bf16 it runs flash attention, which computes differently."""
    cpu = recipe.cache_fingerprint_parts(tiny_config(attn_implementation="sdpa"), ("dialogue",))
    asked = recipe.cache_fingerprint_parts(tiny_config(attn_implementation="flash_attention_2"), ("dialogue",))
    assert asked == cpu
    monkeypatch.setattr(recipe, "resolved_device", lambda c: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(backends, "flash_attn_available", lambda: True)
    flash = recipe.cache_fingerprint_parts(tiny_config(device="cuda", use_bf16=True,
                                                       attn_implementation="flash_attention_2"), ("dialogue",))
    assert flash["encoder_precision"] == ["cuda", "bf16", "flash_attention_2"]


def test_importing_the_recipe_loads_no_torch():
    import subprocess

    code = "import sys, latentbridge.recipe; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_a_preset_pointed_at_another_dataset_pretrains_on_that_datasets_texts(preset, tmp_path):
    """The bundled pretraining text belongs to the bundled dialogues: on a user's dataset, stages 1-2 read the
    dataset's own texts, on the small preset as on the tiny one (the small preset used to need --pretrain-mix)."""
    from latentbridge.config_sources import load_config

    own = recipe.pretrain_sources(load_config(preset=preset, dataset_name=str(tmp_path / "my_docs")))
    assert [(s.location, s.task_texts) for s in own] == [(str(tmp_path / "my_docs"), True)]
    bundled = recipe.pretrain_sources(load_config(preset=preset))
    assert len(bundled) == 3 and not any(s.task_texts for s in bundled)
