"""Config built directly: defaults, validation, cross-field rules, derived values."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentbridge.config import STAGES, Config, ConfigError, field_meta, field_names, preset_config
from tests.factories import tiny_config

GOLDEN_FIELDS = Path(__file__).parent / "golden" / "config_fields.txt"

SEED_DEFAULTS = {  # a sample of seed 004's table, checked literally
    "latent_dim": 256, "latent_seq_len": 8, "prefix_len": 50, "learning_rate": 2e-5, "batch_size": 30,
    "gradient_accumulation_steps": 3, "max_seq_len": 512, "max_target_len": 256,
    "modernbert_model": "answerdotai/ModernBERT-base", "gpt2_model": "google/gemma-3-270m-it",
    "device": "cuda", "torch_compile_mode": "reduce-overhead", "attn_implementation": "flash_attention_2",
    "rmsnorm_eps": 1e-6, "save_every": 500, "handoff_best_model_filename": "best_model.pt",
    "temperature": 0.7, "top_p": 0.9, "top_k": 50, "stop_latent_seed": 1337,
    "stop_latent_cosine_threshold": 0.99, "dataset_name": "knkarthick/samsum", "max_train_samples": None,
    "preprocess_cache_dir": "cache/preprocessed", "preprocess_format": "jsonl",
    "cache_store_embeddings_int8": True, "pipeline_mode": "two_stage_scientific",
    "pretrain_middle_epochs": 6, "pretrain_adapter_max_samples_arxiv": 150000, "contrastive_weight": 0.1,
    "training_phase": "normal",
}


def test_field_names_match_the_snapshot():
    assert list(field_names()) == GOLDEN_FIELDS.read_text().split()


@pytest.mark.parametrize("name,value", sorted(SEED_DEFAULTS.items()))
def test_defaults_follow_the_seed_table(name, value):
    assert getattr(Config(), name) == value


def test_every_field_has_a_section_and_help():
    for name in field_names():
        meta = field_meta(name)
        assert meta["section"] and meta["help"], name


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config().batch_size = 3  # type: ignore[misc]


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        Config(batch_size=0, middle_dropout=1.0, top_p=0.0, device="tpu", learning_rate="fast")
    fields = [p.field for p in caught.value.problems]
    assert fields == ["middle_dropout", "learning_rate", "batch_size", "device", "top_p"]
    message = str(caught.value)
    assert "device = 'tpu'" in message and "one of cuda, cpu, mps, auto" in message
    assert "--batch-size" in message


@pytest.mark.parametrize("changes,field", [
    ({"middle_num_heads": 5}, "middle_num_heads"),
    ({"latent_dim": 96, "adapter_num_heads": 64}, "adapter_num_heads"),
    ({"latent_dim": 12, "middle_num_heads": 4, "adapter_num_heads": 2}, "middle_num_heads"),
    ({"latent_seq_len": 600}, "latent_seq_len"),
    ({"training_phase": "phase2", "num_encoder_unfrozen_layers": 0}, "num_encoder_unfrozen_layers"),
    ({"handoff_best_model_filename": "best_model_pretrain.pt"}, "handoff_best_model_filename"),
    ({"max_generation_length": 2000}, "max_generation_length"),
    ({"cache_use_embeddings_for_training": False}, "cache_store_text"),
    ({"warmup_ratio": 0.1}, "warmup_steps"),
    ({"min_lr_ratio": 0.1}, "min_lr_ratio"),
    ({"best_model_metric": "rougeL"}, "eval_rouge_samples"),
    ({"decoder_lora_target_modules": "q_proj,,v_proj"}, "decoder_lora_target_modules"),
    ({"dataset_input_template": "{title}\n{body", "dataset_input_field": None}, "dataset_input_template"),
    ({"dataset_input_template": "{} and {0}"}, "dataset_input_template"),
    ({"dataset_input_template": "{row.title}"}, "dataset_input_template"),
    ({"dataset_input_template": "no columns"}, "dataset_input_template"),
    ({"dataset_input_template": "{body}", "dataset_input_field": "body"}, "dataset_input_template"),
    ({"dataset_input_field": "body", "dataset_target_field": "body"}, "dataset_target_field"),
])
def test_cross_field_rules_name_the_field(changes, field):
    with pytest.raises(ConfigError) as caught:
        Config(**changes)
    assert [p.field for p in caught.value.problems] == [field]


def test_mlp_middle_has_no_heads_to_check():
    with pytest.raises(ConfigError, match="middle_num_heads"):
        Config(middle_num_heads=5)
    assert Config(middle_num_heads=5, middle_architecture="mlp").middle_num_heads == 5
    with pytest.raises(ConfigError, match="adapter_num_heads"):  # the adapter's heads still are
        Config(adapter_num_heads=5, middle_architecture="mlp")


def test_live_middle_stages_ask_for_cached_text_by_flag():
    with pytest.raises(ConfigError, match=r"(?s)cache_store_text = False.*--cache-store-text"):
        Config(cache_use_embeddings_for_training=False)
    assert not Config(cache_use_embeddings_for_training=False, cache_store_text=True).cache_use_embeddings_for_training


def test_a_template_over_named_columns_is_valid():
    config = Config(dataset_input_template="{qualname}:\n{body!s:.2000}", dataset_target_field="summary_line")
    assert config.dataset_input_template.startswith("{qualname}")


def test_odd_head_size_is_fine_without_rope():
    config = Config(latent_dim=12, middle_num_heads=4, adapter_num_heads=4, middle_use_rope=False,
                    adapter_use_rope=False, use_prefix_rope=False)
    assert config.latent_dim == 12
    # each head count is checked against its own RoPE flags
    assert Config(latent_dim=12, middle_num_heads=4, adapter_num_heads=2, middle_use_rope=False).latent_dim == 12


@pytest.mark.parametrize("name,value", [
    ("batch_size", True), ("batch_size", 2.5), ("learning_rate", float("nan")), ("use_tui", 1),
    ("dataset_name", ""), ("max_train_samples", 0), ("seed", None),
])
def test_wrong_types_and_ranges_are_refused(name, value):
    with pytest.raises(ConfigError) as caught:
        Config(**{name: value})
    assert caught.value.problems[0].field == name


def test_replace_revalidates_and_refuses_unknown_fields():
    config = Config()
    assert config.replace(batch_size=8).batch_size == 8
    with pytest.raises(ConfigError, match="batch_size"):
        config.replace(batch_size=-1)
    with pytest.raises(ConfigError, match="did you mean learning_rate"):
        config.replace(learnig_rate=1.0)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_batch_size_falls_back_to_batch_size(stage):
    config = Config(batch_size=12)
    assert config.stage_batch_size(stage) == 12
    assert config.replace(**{f"{stage}_batch_size": 5}).stage_batch_size(stage) == 5


def test_stage_epochs_are_capped_by_num_epochs():
    config = Config(pretrain_middle_epochs=6, num_epochs=4)
    assert config.stage_epochs("pretrain_middle") == 4
    assert config.stage_epochs("finetune_adapter") == 2


def test_unknown_stage_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown stage"):
        Config().stage_batch_size("stage5")


@pytest.mark.parametrize("bf16,fp16,expected", [(True, True, "bf16"), (False, True, "fp16"), (False, False, "fp32")])
def test_precision_prefers_bf16(bf16, fp16, expected):
    assert Config(use_bf16=bf16, use_fp16=fp16).precision == expected


def test_presets_validate():
    assert preset_config("base") == Config()
    tiny = tiny_config()
    assert tiny.device == "cpu" and tiny.tiny_assets_dir == "cache/tiny"
    assert tiny_config(batch_size=4).batch_size == 4


def test_warmup_ratio_replaces_warmup_steps_which_must_then_be_zero():
    with pytest.raises(ConfigError, match=r"(?s)warmup_steps = 200.*0 when warmup_ratio is set.*--warmup-steps 0"):
        Config(warmup_ratio=0.1)
    assert Config(warmup_ratio=0.1, warmup_steps=0).warmup_ratio == 0.1


def test_min_lr_ratio_belongs_to_cosine_with_min_lr():
    with pytest.raises(ConfigError, match="--lr-scheduler-type cosine_with_min_lr"):
        Config(lr_scheduler_type="cosine", min_lr_ratio=0.1)
    assert Config(lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.1).min_lr_ratio == 0.1


def test_rouge_selection_needs_rouge_samples():
    with pytest.raises(ConfigError, match="eval_rouge_samples = 0.*best_model_metric rougeL"):
        Config(best_model_metric="rougeL")
    assert Config(best_model_metric="rougeL", eval_rouge_samples=16).eval_rouge_samples == 16
