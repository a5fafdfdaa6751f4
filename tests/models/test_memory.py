"""The memory estimate's per-layer counts against what autograd really saves, on tiny layers of both backbones,
and the estimate's structure (models/memory.py). Its accuracy at real size is in docs/benchmarks.md."""

import copy
import dataclasses

import pytest
import torch
from transformers import Gemma3ForCausalLM, ModernBertModel

from latentbridge.models import tiny
from latentbridge.models.activation_checkpointing import SavedForBackward
from latentbridge.models.memory import (estimate_step_memory, layer_bytes_per_token, part_counts,
                                        published_config)
from latentbridge.models.specs import MemoryPrecision, Runtime, StepShape
from latentbridge.recipe import model_spec
from tests.factories import tiny_config


def _saved(kind, cfg, layers, batch, precision, trained):
    cfg = copy.deepcopy(cfg)
    cfg.num_hidden_layers, cfg.layer_types, cfg._attn_implementation = layers, ["full_attention"] * layers, "sdpa"
    torch.manual_seed(0)
    model = (Gemma3ForCausalLM if kind == "gemma3" else ModernBertModel)(cfg).eval()
    model.to(torch.bfloat16 if precision.bf16_weights else torch.float32).requires_grad_(False)
    for layer in (model.model.layers if kind == "gemma3" else model.layers) if trained else []:
        layer.float().requires_grad_(True)
    x = torch.randn(batch, 32, cfg.hidden_size, requires_grad=True,
                    dtype=torch.bfloat16 if precision.bf16_weights else torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.compute == "bf16"), SavedForBackward(model) as s:
        if kind == "gemma3":
            model.model(inputs_embeds=x, use_cache=False)
        else:
            model(inputs_embeds=x)
    return s.bytes


@pytest.mark.parametrize("kind", ["gemma3", "modernbert"])
@pytest.mark.parametrize("precision", [MemoryPrecision(), MemoryPrecision(compute="bf16"),
                                       MemoryPrecision(compute="bf16", bf16_weights=True)])
@pytest.mark.parametrize("trained", [False, True])
def test_layer_counts_match_what_autograd_saves(kind, precision, trained):
    """Per token and layer: the slope over batch sizes of a 3-layer minus a 1-layer model (masks and position
    tables cancel). Tiny widths (H 64, q 64, kv 16, I 128), unlike the real sizes the counts were read from."""
    cfg = tiny.gemma3_config(512) if kind == "gemma3" else tiny.modernbert_config(512)
    r = {(n, b): _saved(kind, cfg, n, b, precision, trained) for n in (1, 3) for b in (2, 4)}
    measured = ((r[3, 4] - r[1, 4]) - (r[3, 2] - r[1, 2])) / 2 / (2 * 32)
    assert measured == pytest.approx(layer_bytes_per_token(cfg, kind, precision, trained), rel=0.02)


def _real_counts(**overrides):
    config = tiny_config(**{"modernbert_model": "answerdotai/ModernBERT-base", "gpt2_model": "google/gemma-3-270m-it",
                            "modernbert_hidden_dim": 768, "gpt2_hidden_dim": 640, "latent_dim": 256,
                            "latent_seq_len": 8, "prefix_len": 50, **overrides})
    enc, dec = published_config(config.modernbert_model), published_config(config.gpt2_model)
    return part_counts(model_spec(config, Runtime()), enc, dec), enc, dec


ADAPTER = StepShape(trains=frozenset({"adapter"}), decoder=True, encodes_live=False, batch_size=8, encoder_len=512,
                    prefix_len=50, target_len=256)


def test_checkpointing_and_bf16_weights_lower_the_estimate_and_batch_raises_it():
    counts, enc, dec = _real_counts()

    def total(shape=ADAPTER, **precision):
        return estimate_step_memory(counts, enc, dec, shape, MemoryPrecision(**precision)).total_gib

    assert total(checkpointing=True) < total()
    assert total(compute="bf16", bf16_weights=True) < total(compute="bf16") < total()
    assert total(dataclasses.replace(ADAPTER, batch_size=16)) > total()


def test_a_cpu_step_adds_the_process_and_what_its_allocator_keeps():
    counts, enc, dec = _real_counts()
    gpu = dict(estimate_step_memory(counts, enc, dec, ADAPTER, MemoryPrecision()).rows)
    cpu = dict(estimate_step_memory(counts, enc, dec, ADAPTER, MemoryPrecision(cpu=True)).rows)
    assert gpu["weights"] == cpu["weights"] == pytest.approx(sum(c.total for c in counts.values()) * 4 / 2**30)
    assert set(cpu) - set(gpu) == {"CPU process (Python, torch, tokenizers)", "freed temporaries the CPU allocator keeps"}


def test_encoder_training_counts_the_trained_encoder_layers():
    counts, enc, dec = _real_counts(num_encoder_unfrozen_layers=2)
    phase2 = dataclasses.replace(ADAPTER, trains=frozenset({"encoder", "compressor", "adapter"}), encodes_live=True,
                                 encoder_len=256)
    rows = dict(estimate_step_memory(counts, enc, dec, phase2, MemoryPrecision()).rows)
    per_token = layer_bytes_per_token(enc, "modernbert", MemoryPrecision(), trained=True)
    assert rows["encoder activations (trained layers)"] * 2**30 == pytest.approx(2 * per_token * 8 * 256)
