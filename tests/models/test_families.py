"""Backbones of any family through one seam (models/families.py): tiny random encoders (ModernBERT, BERT, RoBERTa,
DistilBERT) and decoders (Gemma 3, Llama, Qwen2, Qwen3, GPT-2), each built with from_config, saved and loaded from
its folder, through build, a step of every stage, generation, LoRA, gradient checkpointing, the FSDP units and
doctor's memory estimate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from latentbridge.errors import UserError
from latentbridge.models.bridge import LatentBridge, build_model, set_trainable
from latentbridge.models.activation_checkpointing import is_checkpointed
from latentbridge.models.families import FAMILIES, end_of_turn_id, find_layout
from latentbridge.models.specs import LoraSpec, SamplingSpec
from latentbridge.modes.doctor import build_report
from latentbridge.training.sharding import shard_units
from latentbridge.training.stages import BUDGET_KEYS, StageBudget, plan_stages
from latentbridge.training.trainer import StageObjective
from tests.factories import (DIALOGUES, SUMMARIES, assets_config, build_family_folder, family_tokenizer, tiny_spec)

ENCODERS = ("modernbert", "bert", "roberta", "distilbert")
DECODERS = ("gemma3_text", "llama", "qwen2", "qwen3", "gpt2")
CHAT = {"gemma3_text": "gemma", "llama": "chatml", "qwen2": "chatml", "qwen3": "chatml", "gpt2": None}
END_OF_TURN = {"gemma": "<end_of_turn>", "chatml": "<|im_end|>", None: "<eos>"}  # what a target ends with
# Where each family keeps its blocks and final norm: post-norm encoders (BERT, RoBERTa, DistilBERT) have none
LAYOUTS = {
    "modernbert": ("layers", "final_norm"), "bert": ("encoder.layer", None), "roberta": ("encoder.layer", None),
    "distilbert": ("transformer.layer", None), "gemma3_text": ("model.layers", "model.norm"),
    "llama": ("model.layers", "model.norm"), "qwen2": ("model.layers", "model.norm"),
    "qwen3": ("model.layers", "model.norm"), "gpt2": ("transformer.h", "transformer.ln_f"),
}
# Every encoder with the Gemma 3 decoder, every decoder with the ModernBERT encoder
PAIRS = [(e, "gemma3_text") for e in ENCODERS] + [("modernbert", d) for d in DECODERS[1:]]
MEASURED = {"modernbert", "gemma3_text"}  # families with measured memory coefficients


def _pair_id(pair: tuple[str, str]) -> str:
    return "+".join(pair)


@pytest.fixture(scope="session")
def family_dirs(tiny_assets, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    dirs = {t: build_family_folder(tiny_assets, t, "encoder", root / t) for t in ENCODERS}
    dirs.update({t: build_family_folder(tiny_assets, t, "decoder", root / t, CHAT[t]) for t in DECODERS})
    return dirs


def _model(tiny_assets, family_dirs, pair, seed: int = 0, lora=None, checkpointing=False) -> LatentBridge:
    encoder, decoder = pair
    spec = tiny_spec(tiny_assets, encoder={"model": str(family_dirs[encoder])},
                     decoder={"model": str(family_dirs[decoder]), "lora": lora})
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, gradient_checkpointing=checkpointing))
    return build_model(spec, seed=seed)


def _batch(model: LatentBridge) -> dict:
    """A batch as the cache gives it (the latents from this model's own encoder) plus its texts."""
    with torch.no_grad():
        inputs = model.encode(*model.encoder.tokenize(DIALOGUES, 48))
        targets = model.encode(*model.encoder.tokenize(SUMMARIES, 24))
    ids, mask = model.decoder.target_ids(SUMMARIES, 24)
    return {"text": DIALOGUES, "target_text": SUMMARIES, "input_latents": inputs[0], "input_latent_mask": inputs[1],
            "target_latents": targets[0], "target_latent_mask": targets[1], "target_ids": ids,
            "target_attention_mask": mask}


def _stages():
    """The four stages of the pipeline and the encoder-training phase (the one that trains the encoder's blocks)."""
    budgets = {k: StageBudget(epochs=1, batch_size=4) for k in BUDGET_KEYS}
    common = dict(run_pretraining=True, run_finetuning=True, adapter_pretrain_use_middle=False,
                  freeze_encoder_compression=True, train_decoder_layers=True, budgets=budgets)
    four = plan_stages(pipeline_mode="two_stage_scientific", training_phase="normal", **common)
    return [*four, *plan_stages(pipeline_mode="two_stage_scientific", training_phase="phase2", **common)]


@pytest.mark.parametrize("model_type", [*ENCODERS, *DECODERS])
def test_the_seam_finds_each_familys_blocks_and_final_norm(family_dirs, model_type):
    from transformers import AutoModel, AutoModelForCausalLM

    role = "encoder" if model_type in ENCODERS else "decoder"
    model = (AutoModel if role == "encoder" else AutoModelForCausalLM).from_pretrained(family_dirs[model_type])
    layout = find_layout(model, str(family_dirs[model_type]), role)
    assert (layout.model_type, (layout.blocks, layout.final_norm)) == (model_type, LAYOUTS[model_type])
    blocks = model.get_submodule(layout.blocks)
    assert len(blocks) == 2 and all(type(b).__name__ in (model._no_split_modules or {type(b).__name__}) for b in blocks)


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_one_step_of_every_stage_trains_exactly_its_parts(tiny_assets, family_dirs, pair):
    model = _model(tiny_assets, family_dirs, pair)
    batch = _batch(model)
    model.train()
    for stage in _stages():
        names = set(set_trainable(model, stage.trains))
        params = [p for p in model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)  # moves only what has a gradient
        loss = StageObjective(model, stage, 48, 24)(batch)["loss"]
        loss.backward()
        assert torch.isfinite(loss), stage.name
        with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
        assert with_grad <= names and names - with_grad <= {"middle.stop_latent"}, stage.name  # no stop in a batch
        optimizer.step()
        assert all(not torch.equal(b, p) for b, p in zip(before, params) if p.ndim > 1), stage.name
        model.zero_grad(set_to_none=True)
    trained = set(set_trainable(model, {"encoder", "decoder"}))
    encoder_norm, decoder_norm = LAYOUTS[pair[0]][1], LAYOUTS[pair[1]][1]
    assert any(n.startswith("encoder.backbone.") for n in trained)
    assert any(n.startswith(f"encoder.backbone.{encoder_norm}.") for n in trained) == (encoder_norm is not None)
    assert any(n.startswith(f"decoder.model.{decoder_norm}.") for n in trained)


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_targets_end_and_generation_stops_on_the_familys_end_of_turn(tiny_assets, family_dirs, pair):
    model = _model(tiny_assets, family_dirs, pair).eval()
    decoder = model.decoder
    end = END_OF_TURN[CHAT[pair[1]]]
    assert decoder.end_id == decoder.tokenizer.convert_tokens_to_ids(end)
    ids, mask = decoder.target_ids(SUMMARIES, 24)
    assert all(row[m.bool()][-1] == decoder.end_id for row, m in zip(ids, mask))
    outputs = model.generate(DIALOGUES, 48, SamplingSpec(max_new_tokens=5, do_sample=False))
    assert len(outputs) == len(DIALOGUES) and all(isinstance(o, str) for o in outputs)


@pytest.mark.parametrize("model_type", DECODERS)
def test_lora_goes_on_the_family_projections_of_the_lower_blocks(tiny_assets, family_dirs, model_type):
    model = _model(tiny_assets, family_dirs, ("modernbert", model_type), lora=LoraSpec(rank=2))
    lora = {n for n in set_trainable(model, {"decoder"}) if ".lora_" in n}
    blocks = LAYOUTS[model_type][0]
    assert lora and all(n.startswith(f"decoder.model.{blocks}.0.") for n in lora)  # block 1 trains in full
    assert {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for n in lora} == set(FAMILIES[model_type].lora_targets)
    batch = _batch(model)
    stage = _stages()[1]  # pretrain_adapter: the adapter and the decoder's blocks train
    set_trainable(model, stage.trains)
    StageObjective(model, stage, 48, 24)(batch)["loss"].backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in lora)


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_gradient_checkpointing_wraps_every_block_and_keeps_loss_and_gradients(tiny_assets, family_dirs, pair):
    plain = _model(tiny_assets, family_dirs, pair, seed=3)
    checkpointed = _model(tiny_assets, family_dirs, pair, seed=3, checkpointing=True)
    assert all(is_checkpointed(b) for b in [*checkpointed.encoder.layers, *checkpointed.decoder.layers])
    assert not any(is_checkpointed(b) for b in [*plain.encoder.layers, *plain.decoder.layers])
    stage = _stages()[1]
    results = []
    for model in (plain, checkpointed):
        model.eval()
        set_trainable(model, stage.trains)
        loss = StageObjective(model, stage, 48, 24)(_batch(model))["loss"]
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (plain_loss, plain_grads), (loss, grads) = results
    assert plain_grads.keys() == grads.keys() and any(".layers." in n or ".h." in n for n in grads)
    torch.testing.assert_close(loss, plain_loss)
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_the_fsdp_units_are_the_blocks_of_both_backbones(tiny_assets, family_dirs, pair):
    model = _model(tiny_assets, family_dirs, pair)
    units = shard_units(model)
    assert units == [*model.encoder.layers, *model.decoder.layers] and len(units) == 4
    for backbone, block in ((model.encoder.backbone, units[0]), (model.decoder.model, units[-1])):
        assert type(block).__name__ in (backbone._no_split_modules or {type(block).__name__})


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_doctor_estimates_memory_and_names_a_family_without_measured_coefficients(tiny_root, family_dirs, tmp_path,
                                                                                 pair):
    config = assets_config(tiny_root, modernbert_model=str(family_dirs[pair[0]]),
                           gpt2_model=str(family_dirs[pair[1]]), modernbert_hidden_dim=32, gpt2_hidden_dim=32,
                           preprocess_cache_dir=str(tmp_path / "cache"), checkpoint_dir=str(tmp_path / "ckpt"),
                           output_dir=str(tmp_path / "runs"), num_encoder_unfrozen_layers=1, training_phase="phase2",
                           cache_store_text=True)  # phase2 trains the encoder: its estimate counts both backbones
    report = build_report(config)
    assert report.problems == []
    memory = {item: value for item, value, _ in report.sections["memory"]}
    assert "GiB peak" in memory["total"]
    notes = [value for item, value, status in report.sections["memory"] if item == "not measured"]
    unmeasured = [t for t in pair if t not in MEASURED]
    assert len(notes) == len(unmeasured) and all(repr(t) in n for t, n in zip(unmeasured, notes))
    assert ("within 25% of measured peaks" in memory["total"]) == (not unmeasured)


def test_end_of_turn_is_read_from_the_chat_template_or_is_eos(tiny_assets):
    for chat, token in END_OF_TURN.items():
        tok = family_tokenizer(tiny_assets, "decoder", chat)
        assert end_of_turn_id(tok) == tok.convert_tokens_to_ids(token)


def test_a_layout_without_a_block_list_is_a_user_error_naming_model_and_type(family_dirs):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(family_dirs["gpt2"])
    model.transformer.h = nn.Sequential(*model.transformer.h)  # blocks no longer in a ModuleList
    with pytest.raises(UserError) as error:
        find_layout(model, "my/gpt", "decoder")
    message = str(error.value)
    assert "'my/gpt'" in message and "GPT2LMHeadModel" in message and "'gpt2'" in message
    assert "list of transformer blocks" in message
