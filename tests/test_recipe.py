"""recipe.py: the Config turned into each layer's specs, stage plan and fingerprints."""

from __future__ import annotations

import sys

import pytest

from latentbridge import recipe
from latentbridge.models.runtime import resolve_runtime
from latentbridge.models.specs import Runtime, RuntimeRequest
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
    runtime = Runtime(device="cpu")
    spec = recipe.model_spec(config, runtime)
    assert (spec.encoder.latent_dim, spec.middle.latent_dim, spec.adapter.latent_dim) == (32, 32, 32)
    assert spec.adapter.prefix_len == 5 and spec.middle.layers == 3 and spec.decoder.unfrozen_layers == 1
    assert spec.runtime.resolved is runtime
    assert recipe.sampling_spec(config).max_new_tokens == config.max_generation_length


def test_the_runtime_request_carries_the_configs_machine_fields():
    config = tiny_config(device="cuda", use_bf16=True, use_fp16=True, attn_implementation="eager", tf32=False)
    assert recipe.runtime_request(config) == RuntimeRequest(device="cuda", use_bf16=True, use_fp16=True,
                                                            attn_implementation="eager", tf32=False)


def _fingerprint(runtime: Runtime, **fields) -> dict:
    return recipe.cache_fingerprint_parts(tiny_config(**fields), runtime, ("dialogue",))


@pytest.mark.parametrize("flags", [{"use_bf16": True}, {"use_fp16": True}, {"use_bf16": True, "use_fp16": True}])
def test_a_half_precision_request_on_cpu_keeps_the_fp32_cache_fingerprint(flags):
    fp32 = _fingerprint(resolve_runtime(recipe.runtime_request(tiny_config())))
    asked = _fingerprint(resolve_runtime(recipe.runtime_request(tiny_config(**flags))), **flags)
    assert fp32 == asked and fp32["encoder_precision"] == ["cpu", "fp32", "sdpa"]


def test_the_cache_fingerprint_follows_the_precision_the_device_gives():
    """On a GPU with bf16 the same request changes what the encoder computes, and so the fingerprint."""
    def on_cuda(bf16_supported: bool, **fields) -> dict:
        request = recipe.runtime_request(tiny_config(device="cuda", **fields))
        return _fingerprint(resolve_runtime(request, "cuda", bf16_supported=bf16_supported), device="cuda", **fields)

    fp32, bf16 = on_cuda(True), on_cuda(True, use_bf16=True)
    assert fp32["encoder_precision"][:2] == ["cuda", "fp32"] and bf16["encoder_precision"][:2] == ["cuda", "bf16"]
    assert on_cuda(False, use_bf16=True) == fp32  # an old GPU: fp32 after all


def test_the_cache_fingerprint_follows_the_attention_backend_the_device_gives():
    """flash_attention_2 asked for on a CPU runs sdpa, so it keeps the sdpa cache; on CUDA with the package and
    bf16 it runs flash attention, which computes differently."""
    cpu = _fingerprint(resolve_runtime(recipe.runtime_request(tiny_config())))
    flash_fields = {"attn_implementation": "flash_attention_2"}
    asked = _fingerprint(resolve_runtime(recipe.runtime_request(tiny_config(**flash_fields))), **flash_fields)
    assert asked == cpu
    flash_fields.update(device="cuda", use_bf16=True)
    runtime = resolve_runtime(recipe.runtime_request(tiny_config(**flash_fields)), "cuda", flash_available=True,
                              bf16_supported=True)
    assert _fingerprint(runtime, **flash_fields)["encoder_precision"] == ["cuda", "bf16", "flash_attention_2"]


def test_the_memory_estimate_reads_the_runtime():
    flash = Runtime(device="cuda", precision="bf16", weight_precision="bf16", attn_implementation="flash_attention_2")
    precision = recipe.memory_precision(tiny_config(), flash)
    assert (precision.compute, precision.bf16_weights, precision.cpu) == ("bf16", True, False)
    precision = recipe.memory_precision(tiny_config(), Runtime())
    assert (precision.compute, precision.bf16_weights, precision.cpu) == ("fp32", False, True)


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
