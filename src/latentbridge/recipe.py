"""The one place that turns a Config into what each layer takes; nothing below this module reads the Config.

    models/    runtime_request(c), model_spec(c, runtime), sampling_spec(c), encoder_spec(c), decoder_spec(c), ...
    data/      data_spec(c), cache_spec(c), collections(c), cache_fingerprint_parts(c, runtime, ...)
    training/  plan(c) (the stages, with their budgets), train_settings(c), checkpoint_fingerprint(c)

No torch at import: what the machine gives (models/runtime.resolve_runtime) is resolved by the modes and
handed in as a `Runtime`; what needs a torch module imports it inside the function that asks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from latentbridge.config import LORA_AUTO, STAGES, Config
from latentbridge.data.cache import hash_path
from latentbridge.data.encoding import CacheSpec
from latentbridge.data.corpus import corpus_paths
from latentbridge.data.sources import Columns, DataSpec, PretrainSource, training_texts
from latentbridge.errors import UserError
from latentbridge.models.specs import (AdapterSpec, DecoderSpec, EncoderSpec, LoraSpec, LossSpec, MemoryPrecision,
                                       MiddleSpec, ModelSpec, Runtime, RuntimeRequest, RuntimeSpec,
                                       SamplingSpec, StepShape)
from latentbridge.pretrain_mix import TASK_DATASET, MixError, MixSource, load_mix
from latentbridge.training.stages import BUDGET_KEYS, DATA_COLLECTIONS, Stage, StageBudget, plan_stages

if TYPE_CHECKING:
    from latentbridge.training.checkpoint import ConfigFingerprint
    from latentbridge.training.optim import PartRates
    from latentbridge.training.trainer import TrainSettings

PRETRAIN_FIELDS = {"wikitext": "wikitext_dataset", "arxiv": "arxiv_dataset", "english": "english_pretrain_dataset"}
BEST_FIELDS = ("pretrain_best_model_filename", "finetune_best_model_filename")
# what LoRA weights must match: their shapes (rank, targets) and their scale (alpha / rank); dropout only trains
LORA_FIELDS = ("decoder_lora_rank", "decoder_lora_alpha", "decoder_lora_target_modules")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.txt", "merges.txt", "chat_template.jinja", "added_tokens.json")
LOCAL_DATA_HASH_LIMIT = 256 << 20  # local data files up to this size are hashed by content, larger by size+mtime


# --- models -------------------------------------------------------------------------------------


def encoder_spec(c: Config) -> EncoderSpec:
    return EncoderSpec(model=c.modernbert_model, latent_dim=c.latent_dim, latent_seq_len=c.latent_seq_len,
                       normalize_latent=c.normalize_latent, unfrozen_layers=c.num_encoder_unfrozen_layers,
                       expected_hidden_dim=c.modernbert_hidden_dim)


def middle_spec(c: Config) -> MiddleSpec:
    return MiddleSpec(latent_dim=c.latent_dim, latent_seq_len=c.latent_seq_len, layers=c.middle_transformer_layers,
                      num_heads=c.middle_num_heads, ffn_multiplier=c.middle_ffn_multiplier, dropout=c.middle_dropout,
                      use_rope=c.middle_use_rope, rope_base=float(c.rope_base), use_rmsnorm=c.use_rmsnorm,
                      architecture=c.middle_architecture, mlp_layers=c.middle_layers, mlp_hidden_dim=c.middle_hidden_dim,
                      norm_eps=c.rmsnorm_eps, normalize_latent=c.normalize_latent, use_stop_latent=c.use_stop_latent,
                      stop_latent_init=c.stop_latent_init, stop_latent_seed=c.stop_latent_seed,
                      stop_cosine_threshold=c.stop_latent_cosine_threshold)


def adapter_spec(c: Config) -> AdapterSpec:
    return AdapterSpec(latent_dim=c.latent_dim, prefix_len=c.prefix_len, num_heads=c.adapter_num_heads,
                       dropout=c.adapter_dropout, query_rope=c.use_prefix_rope, key_rope=c.adapter_use_rope,
                       rope_base=float(c.rope_base), use_rmsnorm=c.use_rmsnorm, norm_eps=c.rmsnorm_eps)


def lora_spec(c: Config) -> Optional[LoraSpec]:
    """LoRA on the decoder layers below the decoder_unfrozen_layers top ones; None when decoder_lora_rank is 0."""
    if c.decoder_lora_rank == 0:
        return None
    return LoraSpec(rank=c.decoder_lora_rank, alpha=c.decoder_lora_alpha, dropout=c.decoder_lora_dropout,
                    target_modules=lora_target_modules(c.decoder_lora_target_modules))


def lora_target_modules(names: str) -> tuple[str, ...]:
    """The comma-separated module names of decoder_lora_target_modules; "auto" (empty): the decoder family's."""
    if names.strip() == LORA_AUTO:
        return ()
    return tuple(n.strip() for n in names.split(","))


def decoder_spec(c: Config) -> DecoderSpec:
    return DecoderSpec(model=c.gpt2_model, unfrozen_layers=c.decoder_unfrozen_layers,
                       expected_hidden_dim=c.gpt2_hidden_dim, lora=lora_spec(c))


def loss_spec(c: Config) -> LossSpec:
    return LossSpec(mse_weight=c.latent_mse_weight, contrastive_weight=c.contrastive_weight)


def runtime_request(c: Config) -> RuntimeRequest:
    """What `c` asks of the machine; models/runtime.resolve_runtime decides what it gets, once per run."""
    return RuntimeRequest(device=c.device, use_bf16=c.use_bf16, use_fp16=c.use_fp16,
                          attn_implementation=c.attn_implementation, tf32=c.tf32)


def runtime_spec(c: Config, runtime: Runtime) -> RuntimeSpec:
    """`runtime`: the resolved Runtime of the run."""
    return RuntimeSpec(resolved=runtime, gradient_checkpointing=c.use_gradient_checkpointing,
                       compile=c.use_torch_compile, compile_mode=c.torch_compile_mode)


def sampling_spec(c: Config) -> SamplingSpec:
    return SamplingSpec(max_new_tokens=c.max_generation_length, do_sample=c.do_sample, temperature=c.temperature,
                        top_p=c.top_p, top_k=c.top_k, no_repeat_ngram_size=c.no_repeat_ngram_size)


def model_spec(c: Config, runtime: Runtime) -> ModelSpec:
    return ModelSpec(encoder=encoder_spec(c), middle=middle_spec(c), adapter=adapter_spec(c), decoder=decoder_spec(c),
                     loss=loss_spec(c), runtime=runtime_spec(c, runtime))


# --- data and the cache -------------------------------------------------------------------------


def _cap_max(*caps: Optional[int]) -> Optional[int]:
    """The larger of caps where None means "no cap" (so any None wins)."""
    return None if any(c is None for c in caps) else max(caps)  # type: ignore[type-var]


def _cap_min(*caps: Optional[int]) -> Optional[int]:
    real = [c for c in caps if c is not None]
    return min(real) if real else None


def stage_caps(c: Config, stage: str) -> tuple[Optional[int], dict[str, Optional[int]]]:
    """(total cap, {pretraining source: cap}) on the training rows of one of config.STAGES; max_train_samples
    caps every source of the pretraining stages and the total of the dialogue stages (stage 2 has no English
    cap of its own)."""
    if stage.startswith("pretrain"):
        per = {name: _cap_min(getattr(c, f"{stage}_max_samples_{name}", None), c.max_train_samples)
               for name in PRETRAIN_FIELDS}
        return c.stage_max_samples(stage), per
    return _cap_min(c.stage_max_samples(stage), c.max_train_samples), {}


def _same_path(a: str, b: Path) -> bool:
    return Path(a).expanduser().resolve() == b.expanduser().resolve()


def _bundled(c: Config, key: str, location: str) -> bool:
    """Whether `location` is the bundled `key` (dataset, wikitext, arxiv, english) of the tiny or small preset."""
    root = c.tiny_assets_dir or c.small_assets_dir
    return bool(root) and _same_path(location, corpus_paths(Path(root) / "data")[key])


def uses_bundled_corpus(c: Config) -> bool:
    """The tiny preset's data as shipped: the bundled dialogues and the three bundled pretraining sources."""
    return c.pretrain_mix is None and all(_bundled(c, key, getattr(c, field)) for key, field in
                                          [("dataset", "dataset_name"), *PRETRAIN_FIELDS.items()])


def uses_own_texts(c: Config) -> bool:
    """The tiny or small preset pointed at another dataset: its bundled pretraining text belongs to the bundled
    dialogues, so the dataset's own texts replace it (a `dataset` source, unless pretrain_mix says otherwise)."""
    return not _bundled(c, "dataset", c.dataset_name) and all(
        _bundled(c, name, getattr(c, field)) for name, field in PRETRAIN_FIELDS.items())


def mix_sources(c: Config) -> tuple[MixSource, ...]:
    """The sources of `pretrain_mix`, read and checked (a UserError naming the field when wrong)."""
    try:
        return load_mix(c.pretrain_mix)
    except MixError as error:
        raise UserError(f"pretrain_mix = {c.pretrain_mix!r}: {error}. Expected a mix file (YAML/JSON), FILE:NAME, "
                        "or SOURCE[:WEIGHT],... (docs/data.md). (flag --pretrain-mix)") from None


def pretrain_sources(c: Config) -> tuple[PretrainSource, ...]:
    """The pretraining sources with their document caps: pretrain_mix's, else the three seed-004 fields."""
    caps = [stage_caps(c, s) for s in STAGES if s.startswith("pretrain")]

    def cap(name: str, own: Optional[int] = None) -> Optional[int]:
        stages = _cap_max(*[_cap_min(per.get(name, c.max_train_samples), total) for total, per in caps])
        return _cap_min(own, stages)

    if c.pretrain_mix is not None:
        return tuple(PretrainSource(s.name, c.dataset_name if s.is_task_dataset else s.path, "pretrain_mix",
                                    cap(s.name, s.cap), s.weight, s.subset, s.split, s.text_field, s.text_template,
                                    task_texts=s.is_task_dataset) for s in mix_sources(c))
    if uses_own_texts(c):
        return (PretrainSource(TASK_DATASET, c.dataset_name, "dataset_name", cap(TASK_DATASET), task_texts=True),)
    return tuple(PretrainSource(name, getattr(c, field), field, cap(name)) for name, field in PRETRAIN_FIELDS.items())


def data_spec(c: Config, collections_: tuple[str, ...] = DATA_COLLECTIONS) -> DataSpec:
    """What to load: every source with the largest cap any stage needs (stages take subsets at training). A
    pretrain_mix is read only when `collections_` has pretraining text: `eval` and `infer` must not need it."""
    caps = [stage_caps(c, s) for s in STAGES if s.startswith("pretrain")]
    dialogue = [stage_caps(c, s)[0] for s in STAGES if not s.startswith("pretrain")]
    return DataSpec(dataset=c.dataset_name, train_split=c.train_split, validation_split=c.validation_split,
                    test_split=c.test_split, dialogue_max_train=_cap_max(*dialogue),
                    max_validation=c.max_validation_samples, max_test=c.max_test_samples,
                    pretrain=pretrain_sources(c) if c.pretrain_mix is None or "pretrain" in collections_ else (),
                    pretrain_max_train=_cap_max(*[total for total, _ in caps]),
                    validation_fraction=c.preprocess_validation_fraction, seed=c.seed,
                    max_document_chars=c.max_seq_len * 8,
                    columns=Columns(c.dataset_input_field, c.dataset_target_field, c.dataset_input_template))


def _fingerprint_data(spec: DataSpec) -> dict[str, Any]:
    """The DataSpec as the fingerprint sees it: source settings left at their defaults are left out, so the
    three seed-004 sources keep the fingerprint (and the caches) they had before mixes existed."""
    parts = dataclasses.asdict(spec)
    defaults = dataclasses.asdict(PretrainSource("", "", ""))
    parts["pretrain"] = [{k: v for k, v in source.items() if k in ("name", "location", "field", "max_samples")
                          or v != defaults[k]} for source in parts["pretrain"]]
    return parts


def cache_spec(c: Config) -> CacheSpec:
    return CacheSpec(max_seq_len=c.max_seq_len, max_target_len=c.max_target_len, batch_size=c.preprocess_batch_size,
                     chunk_size=c.preprocess_chunk_size,
                     store_text=c.cache_store_text, store_input_ids=c.cache_store_input_ids,
                     store_attention_mask=c.cache_store_attention_mask, store_target_ids=c.cache_store_target_ids,
                     store_target_attention_mask=c.cache_store_target_attention_mask,
                     int8=c.cache_store_embeddings_int8, write_offsets_index=c.cache_write_offsets_index,
                     format=c.preprocess_format)


def collections(c: Config) -> tuple[str, ...]:
    """Pretraining text only when stages 1-2 run; dialogues always (stages 3-4, eval)."""
    return DATA_COLLECTIONS if c.run_pretraining else ("dialogue",)


def model_dir(name: str) -> Optional[Path]:
    """The local folder of a model: the path itself, or its snapshot in the local hub cache."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    try:
        from huggingface_hub import snapshot_download  # its HTTP stack takes 0.4 s; only hub names need it

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        return None


def _data_identity(location: str) -> Any:
    path = Path(location).expanduser()
    if not path.exists():
        return location  # a hub name: the name (and the datasets cache) identify it
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    out = []
    for p in files:
        st = p.stat()
        digest = hash_path(p) if st.st_size <= LOCAL_DATA_HASH_LIMIT else f"{st.st_size}:{st.st_mtime_ns}"
        out.append([str(p.relative_to(path)) if path.is_dir() else p.name, digest])
    return out


def cache_fingerprint_parts(c: Config, runtime: Runtime, collections_: tuple[str, ...],
                            encoder_state: Optional[Path] = None) -> dict[str, Any]:
    """Everything besides the CacheSpec that changes the cache's content. The encoder runs in the
    runtime's (effective) precision and attention backend, so `--use-bf16` or flash_attention_2 asked for
    on a CPU reuse the fp32 sdpa cache."""
    enc = dataclasses.asdict(encoder_spec(c))
    for k in ("unfrozen_layers", "expected_hidden_dim", "hidden_dim_field", "model_field"):
        enc.pop(k, None)
    enc_dir, dec_dir = model_dir(c.modernbert_model), model_dir(c.gpt2_model)
    spec = data_spec(c, collections_)
    return {
        "encoder": enc,
        "encoder_files": hash_path(enc_dir) if enc_dir else None,
        "encoder_state": hash_path(encoder_state) if encoder_state else None,
        "encoder_precision": [runtime.device_type, runtime.precision, runtime.attn_implementation],
        "decoder_tokenizer": [c.gpt2_model, hash_path(dec_dir, TOKENIZER_FILES) if dec_dir else None],
        "data": _fingerprint_data(spec),
        "data_files": {name: _data_identity(loc) for name, loc in
                       [("dataset", c.dataset_name)] + [(s.name, s.location) for s in spec.pretrain if not s.task_texts]},
        "collections": list(collections_),
        "seed": c.seed,
    }


# --- training -----------------------------------------------------------------------------------


def stage_budgets(c: Config) -> dict[str, StageBudget]:
    """Each stage's epochs, batch size and caps (end_to_end and phase2's train_encoder use the global ones)."""
    budgets = {name: StageBudget(c.num_epochs, c.batch_size, c.max_train_samples)
               for name in BUDGET_KEYS if name not in STAGES}
    for name in STAGES:
        total, per = stage_caps(c, name)
        budgets[name] = StageBudget(c.stage_epochs(name), c.stage_batch_size(name), total, tuple(sorted(per.items())))
    return budgets


def plan(c: Config) -> tuple[Stage, ...]:
    """The stages this config trains (training/stages.py), each with its budget and caps."""
    stages = plan_stages(pipeline_mode=c.pipeline_mode, training_phase=c.training_phase,
                         run_pretraining=c.run_pretraining, run_finetuning=c.run_finetuning,
                         adapter_pretrain_use_middle=c.adapter_pretrain_use_middle,
                         freeze_encoder_compression=c.freeze_encoder_compression_in_pipeline,
                         train_decoder_layers=c.decoder_unfrozen_layers > 0 or c.decoder_lora_rank > 0,
                         budgets=stage_budgets(c),
                         latent_stages_use_cache=c.cache_use_embeddings_for_training)
    live = [s.name for s in stages if not s.uses_cache]
    if live and not c.cache_store_text:
        raise UserError(f"Stage(s) {', '.join(live)} encode text live (they train the encoder or compressor), "
                        "so the cache must keep the text: add --cache-store-text.")
    return stages


def part_rates(c: Config) -> PartRates:
    """The peak learning rate of each kind of trainable parameter (training/optim.py); unset ones: learning_rate."""
    from latentbridge.training.optim import PartRates  # torch (the training package)

    return PartRates(new=c.learning_rate, encoder=c.encoder_learning_rate or c.learning_rate,
                     decoder=c.decoder_learning_rate or c.learning_rate, lora=c.lora_learning_rate or c.learning_rate)


def direct_baseline_rate(c: Config) -> float:
    """The learning rate of eval --baselines' direct fine-tune of the decoder."""
    return c.direct_baseline_learning_rate or c.learning_rate


def train_settings(c: Config, *, stop_after_steps: Optional[int] = None) -> TrainSettings:
    from latentbridge.training.trainer import TrainSettings  # torch

    return TrainSettings(
        learning_rate=c.learning_rate, part_rates=part_rates(c), weight_decay=c.weight_decay, warmup_steps=c.warmup_steps,
        warmup_ratio=c.warmup_ratio, lr_scheduler_type=c.lr_scheduler_type, min_lr_ratio=c.min_lr_ratio,
        gradient_accumulation_steps=c.gradient_accumulation_steps, max_grad_norm=c.max_grad_norm,
        save_every=c.save_every, log_every=c.log_every, keep_last_checkpoints=c.keep_last_checkpoints,
        async_checkpointing=c.async_checkpointing, checkpoint_dir=Path(c.checkpoint_dir), run_dir=Path(c.output_dir),
        best_filenames={f: getattr(c, f) for f in BEST_FIELDS}, handoff_filename=c.handoff_best_model_filename,
        seed=c.seed, max_seq_len=c.max_seq_len, max_target_len=c.max_target_len, num_workers=c.num_workers,
        prefetch_factor=c.prefetch_factor if c.num_workers > 0 else None,
        sample_max_tokens=min(48, c.max_generation_length), stop_after_steps=stop_after_steps,
        eval_steps=c.eval_steps, eval_rouge_samples=c.eval_rouge_samples,
        eval_max_new_tokens=min(c.max_generation_length, c.max_target_len),
        early_stopping_patience=c.early_stopping_patience, best_model_metric=c.best_model_metric)


def step_shape(c: Config, stage: Stage) -> StepShape:
    """What one step of `stage` holds, for the memory estimate: a stage that encodes live reads the target text
    when it reconstructs it (no middle), else the input text."""
    reads_target = stage.objective == "tokens" and not stage.uses_middle
    return StepShape(trains=stage.trains, decoder=stage.objective == "tokens", encodes_live=not stage.uses_cache,
                     batch_size=stage.batch_size, encoder_len=c.max_target_len if reads_target else c.max_seq_len,
                     prefix_len=c.prefix_len, target_len=c.max_target_len)


def memory_precision(c: Config, runtime: Runtime) -> MemoryPrecision:
    """How a run of `c` holds its tensors under `runtime`: the precision it computes in, whether the frozen
    backbones load in bf16 (with flash_attention_2), gradient checkpointing, CPU or GPU."""
    return MemoryPrecision(compute=runtime.precision, bf16_weights=runtime.weight_precision == "bf16",
                           checkpointing=c.use_gradient_checkpointing, cpu=runtime.device_type == "cpu")


def checkpoint_fingerprint(c: Config) -> ConfigFingerprint:
    """What saved weights must match: checkpoint.ARCHITECTURE_FIELDS of the config, and the content of both
    backbone folders, since a model file holds only the trainable weights and reads the frozen backbones
    from their folders (a rebuilt or swapped backbone would silently change a trained model)."""
    from latentbridge.training.checkpoint import ARCHITECTURE_FIELDS, config_fingerprint  # torch

    backbones = {f"{field}_files": hash_path(folder) if (folder := model_dir(getattr(c, field))) else None
                 for field in ("modernbert_model", "gpt2_model")}
    # only an mlp middle and LoRA fingerprint their own fields: other checkpoints keep the digest they were written with
    mlp = ("middle_architecture", "middle_layers") if c.middle_architecture == "mlp" else ()
    lora = LORA_FIELDS if c.decoder_lora_rank > 0 else ()
    return config_fingerprint({**c.to_dict(), **backbones}, (*ARCHITECTURE_FIELDS, *mlp, *lora, *backbones))


# --- the tiny preset's models -------------------------------------------------------------------------

ASSET_TEXTS_LIMIT = 50_000  # at most this many texts of a user's corpus train the tiny tokenizers and warm-up


def with_tiny_assets(c: Config, log: Callable[[str], None] = print, progress: Any = None) -> Config:
    """`c` with the tiny preset's models in place (nothing to do without tiny_assets_dir).

    On the bundled corpus: the bundled corpus and models, built when missing. On any other data: model fields
    that name the bundled tiny models (or missing models built for a corpus) are pointed at tiny models whose
    tokenizers and LM warm-up come from the configured training texts, under tiny_assets_dir/corpora/
    <fingerprint>, with the hidden sizes modernbert_hidden_dim and gpt2_hidden_dim. `progress` shows the build.
    """
    c = with_gguf_folders(c, progress)
    with_small_assets(c, progress)
    if not c.tiny_assets_dir:
        return c
    from latentbridge import assets  # torch: trains tokenizers and builds models

    root = Path(c.tiny_assets_dir)
    if uses_bundled_corpus(c):
        if not assets.tiny_models_ready(root, assets.SHARED_ASSETS_SEED):
            log(f"First use of the tiny preset: building its models under {root}, once (a tokenizer trained on the "
                f"bundled corpus, then {assets.TINY_LM_STEPS} warm-up steps of the decoder; about 15 s on a CPU).")
        assets.ensure_tiny_assets(root, assets.SHARED_ASSETS_SEED, progress=progress)
        return c
    if _bundled(c, "dataset", c.dataset_name):  # the bundled dialogues beside other pretraining text
        assets.ensure_bundled_corpus(root, assets.SHARED_ASSETS_SEED)
    paths = assets.bundled_paths(root)
    managed = [field for field, key in (("modernbert_model", "encoder"), ("gpt2_model", "decoder"))
               if _filled_here(getattr(c, field), paths[key], root / assets.CORPORA)]
    if not managed:
        return c
    built = _corpus_models(c, log, progress)
    folders = {"modernbert_model": built.encoder_dir, "gpt2_model": built.decoder_dir}
    return c.replace(**{field: str(folders[field]) for field in managed})


def with_small_assets(c: Config, progress: Any = None) -> None:
    """The small preset's packaged backbones and the bundled corpus under small_assets_dir, built when missing
    (nothing to do without it); a UserError naming the install command when the packages are absent."""
    if not c.small_assets_dir:
        return
    from latentbridge import assets, backbones  # torch: unpacks and dequantises models

    root = Path(c.small_assets_dir)
    backbones.ensure_small_assets(root, progress)
    if _same_path(c.dataset_name, corpus_paths(root / "data")["dataset"]):
        assets.ensure_bundled_corpus(root, assets.SHARED_ASSETS_SEED)


def with_gguf_folders(c: Config, progress: Any = None) -> Config:
    """`c` with each backbone field that names a GGUF file (or a folder holding one) pointed at its dequantised
    safetensors folder under backbone_cache_dir, converted on first use and keyed by the file's sha256."""
    from latentbridge.backbones import ensure_gguf_folder  # torch: transformers dequantises the file
    from latentbridge.models.gguf import gguf_file_in  # transformers: the converter beside the probe

    changes = {}
    for field, causal in (("modernbert_model", False), ("gpt2_model", True)):
        gguf_file = gguf_file_in(getattr(c, field))
        if gguf_file is not None:
            changes[field] = str(ensure_gguf_folder(gguf_file, Path(c.backbone_cache_dir), causal, progress))
    return c.replace(**changes) if changes else c


def _filled_here(location: str, bundled: Path, corpora: Path) -> bool:
    """A model field `with_tiny_assets` fills: it names the bundled tiny model, or a corpus model that is missing
    (a saved config on a machine that has not built it yet)."""
    from latentbridge.assets import is_under  # torch: the assets module builds models

    return _same_path(location, bundled) or (is_under(location, corpora) and not Path(location).exists())


def corpus_models_folder(c: Config) -> Path:
    """tiny_assets_dir/corpora/<fingerprint>: where `with_tiny_assets` builds the tiny models of `c`'s training
    texts (it reads them; UserError when they cannot be read)."""
    from latentbridge import assets  # torch: the assets module builds models

    return assets.corpus_folder(Path(c.tiny_assets_dir), training_texts(data_spec(c), ASSET_TEXTS_LIMIT),
                                _corpus_sizes(c), c.seed)


def _corpus_sizes(c: Config) -> Any:
    from latentbridge import assets  # torch: the assets module builds models

    return assets.ModelSizes(assets.CORPUS_VOCAB_SIZE, c.modernbert_hidden_dim, c.gpt2_hidden_dim,
                             assets.CORPUS_LM_STEPS)


def _corpus_models(c: Config, log: Callable[[str], None], progress: Any) -> Any:
    """The tiny models of `c`'s training texts (built, or found by the texts' fingerprint)."""
    from latentbridge import assets  # torch: trains tokenizers and builds models

    spec = data_spec(c)
    log(f"tiny models for {c.dataset_name}: reading its training texts (the tiny preset builds models whose "
        f"tokenizers and decoder warm-up come from your data; once per corpus: {assets.CORPUS_LM_STEPS} warm-up "
        "steps, about 90 s on a CPU)")
    texts = training_texts(spec, ASSET_TEXTS_LIMIT)
    built = assets.ensure_corpus_assets(Path(c.tiny_assets_dir), texts, _corpus_sizes(c), c.seed, progress=progress, describe={
        "dataset_name": c.dataset_name, "train_split": c.train_split, "columns": dataclasses.asdict(spec.columns),
        "pretraining": [s.location for s in spec.pretrain if not s.task_texts]})
    log(f"tiny models for this corpus ({len(texts):,} texts): {built.root}")
    return built
