"""`--mode preprocess`: build (or reuse) the latent cache. Also the one place mapping Config -> data specs.

    with_tiny_assets(config)      -> Config    build the tiny preset's models (for the configured corpus)
    ensure_cache(config)          -> Cache     reuse the complete cache for these settings, or build it
    stage_rows(config, split, s)  -> indices   the rows of a cache split that stage `s` trains on (caps)
    load_cache_encoder_state(cache, encoder)   put the compressor the latents came from into a model

The compressor (segment pooling + projection) is initialised from `seed`, used to encode, and saved in
the cache as `encoder_state.safetensors`; a model trained on cached latents must load it from there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from latentbridge.config import Config
from latentbridge.data.cache import Cache, hash_path
from latentbridge.data.preprocess import BuildResult, CacheSpec, Tokenizers, build_cache
from latentbridge.data.progress import console_progress
from latentbridge.data.sources import Columns, DataSpec, PretrainSource, load_collection
from latentbridge.modes import ModeOptions

ENCODER_STATE = "encoder_state.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.txt", "merges.txt", "chat_template.jinja", "added_tokens.json")
PRETRAIN_FIELDS = {"wikitext": "wikitext_dataset", "arxiv": "arxiv_dataset", "english": "english_pretrain_dataset"}
LOCAL_DATA_HASH_LIMIT = 256 << 20  # local data files up to this size are hashed by content, larger by size+mtime
ASSET_TEXTS_LIMIT = 50_000  # at most this many texts of a user's corpus train the tiny tokenizers and warm-up


# --- Config -> specs -------------------------------------------------------------------------


def _cap_max(*caps: Optional[int]) -> Optional[int]:
    """The larger of caps where None means "no cap" (so any None wins)."""
    return None if any(c is None for c in caps) else max(caps)  # type: ignore[type-var]


def _cap_min(*caps: Optional[int]) -> Optional[int]:
    real = [c for c in caps if c is not None]
    return min(real) if real else None


def stage_source_caps(c: Config, stage: str) -> tuple[Optional[int], dict[str, Optional[int]]]:
    """(total cap, {source: cap}) of a pretraining stage (stage 2 has no English cap of its own)."""
    total = c.stage_max_samples(stage)
    per = {name: getattr(c, f"{stage}_max_samples_{name}", None) for name in PRETRAIN_FIELDS}
    return total, per


def _bundled(c: Config, key: str, location: str) -> bool:
    """Whether `location` is the tiny preset's bundled `key` (dataset, wikitext, ...) under tiny_assets_dir."""
    from latentbridge.assets import bundled_paths, same_path

    return bool(c.tiny_assets_dir) and same_path(location, bundled_paths(Path(c.tiny_assets_dir))[key])


def uses_bundled_corpus(c: Config) -> bool:
    """The tiny preset's data as shipped: the bundled dialogues and all three bundled pretraining sources."""
    return all(_bundled(c, key, getattr(c, field)) for key, field in [("dataset", "dataset_name"),
                                                                      *PRETRAIN_FIELDS.items()])


def replaced_by_own_texts(c: Config) -> list[str]:
    """Bundled pretraining sources that a user's dataset replaces by its own texts: the bundled pretraining
    text belongs to the bundled dialogues (the minimal form of a `dataset` source in a pretraining mix)."""
    if not c.tiny_assets_dir or _bundled(c, "dataset", c.dataset_name):
        return []
    return [name for name, field in PRETRAIN_FIELDS.items() if _bundled(c, name, getattr(c, field))]


def data_spec(c: Config) -> DataSpec:
    """What to load: every source with the largest cap any stage needs (stages take subsets at training)."""
    stages = ("pretrain_middle", "pretrain_adapter")
    caps = [stage_source_caps(c, s) for s in stages]

    def cap(name: str) -> Optional[int]:
        return _cap_min(_cap_max(*[_cap_min(per.get(name), total) for total, per in caps]), c.max_train_samples)

    replaced = replaced_by_own_texts(c)
    pretrain = tuple(PretrainSource(name, getattr(c, field), field, cap(name))
                     for name, field in PRETRAIN_FIELDS.items() if name not in replaced)
    if replaced:
        pretrain += (PretrainSource("dataset", c.dataset_name, "dataset_name", cap("dataset"), task_texts=True),)
    return DataSpec(dataset=c.dataset_name, train_split=c.train_split, validation_split=c.validation_split,
                    test_split=c.test_split,
                    dialogue_max_train=_cap_min(c.max_train_samples, _cap_max(c.finetune_middle_max_samples,
                                                                              c.finetune_adapter_max_samples)),
                    pretrain=pretrain,
                    pretrain_max_train=_cap_max(*[total for total, _ in caps]),
                    validation_fraction=c.preprocess_validation_fraction, seed=c.seed,
                    max_document_chars=c.max_seq_len * 8,
                    columns=Columns(c.dataset_input_field, c.dataset_target_field, c.dataset_input_template))


def cache_spec(c: Config) -> CacheSpec:
    return CacheSpec(max_seq_len=c.max_seq_len, max_target_len=c.max_target_len, batch_size=c.preprocess_batch_size,
                     store_text=c.cache_store_text, store_input_ids=c.cache_store_input_ids,
                     store_attention_mask=c.cache_store_attention_mask, store_target_ids=c.cache_store_target_ids,
                     store_target_attention_mask=c.cache_store_target_attention_mask,
                     int8=c.cache_store_embeddings_int8, write_offsets_index=c.cache_write_offsets_index,
                     format=c.preprocess_format)


def collections(c: Config) -> tuple[str, ...]:
    """Pretraining text only when stages 1-2 run; dialogues always (stages 3-4, eval)."""
    return ("pretrain", "dialogue") if c.run_pretraining else ("dialogue",)


def stage_rows(c: Config, split, stage: str):
    """Row indices of a cache split (`CacheSplit`) that `stage` uses, honouring its caps (seeded)."""
    from latentbridge.data.loader import select_indices

    if stage.startswith("pretrain"):
        total, per = stage_source_caps(c, stage)
        per = {k: _cap_min(v, c.max_train_samples) for k, v in per.items()}
    else:
        total, per = _cap_min(c.stage_max_samples(stage), c.max_train_samples), {}
    if split.rel.endswith(("/validation", "/test")):
        total, per = None, {}
    return select_indices(split, total_cap=total, source_caps=per, seed=c.seed)


# --- tiny assets -----------------------------------------------------------------------------


def with_tiny_assets(c: Config, log: Callable[[str], None] = print) -> Config:
    """`c` with the tiny preset's models in place (nothing to do without tiny_assets_dir).

    On the bundled corpus: the bundled corpus and models, built when missing. On any other data: model fields
    that name the bundled tiny models (or models built for a corpus) are pointed at tiny models whose tokenizers
    and LM warm-up come from the configured training texts, under tiny_assets_dir/corpora/<fingerprint>, with
    the hidden sizes modernbert_hidden_dim and gpt2_hidden_dim.
    """
    if not c.tiny_assets_dir:
        return c
    from latentbridge.assets import (CORPORA, CORPUS_LM_STEPS, CORPUS_VOCAB_SIZE, ModelSizes, bundled_paths,
                                     ensure_bundled_corpus, ensure_corpus_assets, ensure_tiny_assets, is_under,
                                     same_path)
    from latentbridge.data.sources import corpus_texts

    root = Path(c.tiny_assets_dir)
    paths = bundled_paths(root)
    progress = console_progress(use_rich=c.use_tui, every_s=2.0)
    if uses_bundled_corpus(c):
        ensure_tiny_assets(root, c.seed, progress=progress)
        return c
    if _bundled(c, "dataset", c.dataset_name):  # the bundled dialogues beside other pretraining text
        ensure_bundled_corpus(root, c.seed)
    managed = [field for field, key in (("modernbert_model", "encoder"), ("gpt2_model", "decoder"))
               if same_path(getattr(c, field), paths[key]) or is_under(getattr(c, field), root / CORPORA)]
    if not managed:
        return c
    spec = data_spec(c)
    log(f"tiny models for {c.dataset_name}: reading its training texts")
    texts = corpus_texts(spec, ASSET_TEXTS_LIMIT)
    sizes = ModelSizes(CORPUS_VOCAB_SIZE, c.modernbert_hidden_dim, c.gpt2_hidden_dim, CORPUS_LM_STEPS)
    assets = ensure_corpus_assets(root, texts, sizes, c.seed, progress=progress, describe={
        "dataset_name": c.dataset_name, "train_split": c.train_split, "columns": dataclasses.asdict(spec.columns),
        "pretraining": [s.location for s in spec.pretrain if not s.task_texts]})
    log(f"tiny models for this corpus ({len(texts):,} texts): {assets.root}")
    folders = {"modernbert_model": assets.encoder_dir, "gpt2_model": assets.decoder_dir}
    return c.replace(**{field: str(folders[field]) for field in managed})


# --- fingerprint -----------------------------------------------------------------------------


def model_dir(name: str) -> Optional[Path]:
    """The local folder of a model: the path itself, or its snapshot in the local hub cache."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    try:
        from huggingface_hub import snapshot_download

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


def fingerprint_parts(c: Config, collections_: tuple[str, ...], encoder_state: Optional[Path] = None) -> dict[str, Any]:
    """Everything besides the CacheSpec that changes the cache's content."""
    from latentbridge.modes.specs import encoder_spec, runtime_spec

    enc = dataclasses.asdict(encoder_spec(c))
    for k in ("unfrozen_layers", "expected_hidden_dim", "hidden_dim_field", "model_field"):
        enc.pop(k, None)
    enc_dir, dec_dir = model_dir(c.modernbert_model), model_dir(c.gpt2_model)
    rt = runtime_spec(c)
    return {
        "encoder": enc,
        "encoder_files": hash_path(enc_dir) if enc_dir else None,
        "encoder_state": hash_path(encoder_state) if encoder_state else None,
        "encoder_precision": [rt.device.split(":")[0], c.precision, c.attn_implementation],
        "decoder_tokenizer": [c.gpt2_model, hash_path(dec_dir, TOKENIZER_FILES) if dec_dir else None],
        "data": dataclasses.asdict(data_spec(c)),
        "data_files": {name: _data_identity(loc) for name, loc in
                       [("dataset", c.dataset_name)] + [(n, getattr(c, f)) for n, f in PRETRAIN_FIELDS.items()]},
        "collections": list(collections_),
        "seed": c.seed,
    }


# --- loading the encoder ---------------------------------------------------------------------


def load_encode(c: Config, encoder_state: Optional[Path] = None) -> tuple[Tokenizers, Callable, Any]:
    """(tokenizers, encode function, the LatentEncoder) for preprocessing, frozen, on the configured device."""
    import torch
    from transformers import AutoTokenizer

    from latentbridge.models.backends import autocast, log_note, resolve_attention, resolve_dtype
    from latentbridge.models.decoder import target_end_id
    from latentbridge.models.encoder import LatentEncoder, load_encoder_backbone
    from latentbridge.models.loading import load_pretrained
    from latentbridge.modes.specs import decoder_spec, encoder_spec, runtime_spec

    rt = runtime_spec(c)
    device = torch.device(rt.device)
    dtype, dtype_note = resolve_dtype(rt.use_bf16, rt.use_fp16, device)
    attn, attn_note = resolve_attention(rt.attn_implementation, device, dtype)
    log_note(dtype_note)
    log_note(attn_note)
    espec = encoder_spec(c)
    backbone, enc_tok = load_encoder_backbone(espec, attn, rt.allow_download,
                                              dtype if attn == "flash_attention_2" else torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(c.seed)  # the compressor's init depends on the seed only
        encoder = LatentEncoder(backbone, enc_tok, espec)
    if encoder_state is not None:
        from safetensors.torch import load_file

        encoder.load_state_dict(load_file(str(encoder_state)), strict=False)
    encoder.eval().requires_grad_(False).to(device)
    dspec = decoder_spec(c)
    dec_tok = load_pretrained(AutoTokenizer, dspec.model, dspec.model_field, "tokenizer", rt.allow_download)

    def encode(input_ids, attention_mask):
        with autocast(device, dtype):
            return encoder(input_ids.to(device), attention_mask.to(device))

    return Tokenizers(enc_tok, dec_tok, target_end_id(dec_tok, dspec.model)), encode, encoder


def _save_encoder_state(encoder: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    state = {f"compressor.{k}": v.detach().contiguous().cpu() for k, v in encoder.compressor.state_dict().items()}
    save_file(state, str(folder / ENCODER_STATE))


def load_cache_encoder_state(cache: Cache, encoder: Any) -> None:
    """Load the compressor the cached latents were made with into `encoder` (a LatentEncoder)."""
    from safetensors.torch import load_file

    from latentbridge.errors import UserError

    path = cache.folder / ENCODER_STATE
    try:
        state = load_file(str(path))
    except Exception as e:
        raise UserError(f"Cannot read {path} ({e}); preprocess again.") from e
    encoder.load_state_dict(state, strict=False)


# --- the mode --------------------------------------------------------------------------------


def ensure_cache(c: Config, reuse: Optional[bool] = None, encoder_state: Optional[Path] = None,
                 log: Callable[[str], None] = print, allow_build: bool = True) -> BuildResult:
    """The complete cache for `c` (a config after `with_tiny_assets`): reused when `skip_preprocessing_if_cached`
    and intact, else built (unless `allow_build` is off: then a missing cache is a UserError)."""
    cols = collections(c)
    dspec = data_spec(c)
    loaded: dict[str, Any] = {}

    def load_model():
        tok, encode, encoder = load_encode(c, encoder_state)
        loaded["encoder"] = encoder
        return tok, encode

    def before_commit(folder: Path) -> None:
        _save_encoder_state(loaded["encoder"], folder)

    return build_cache(
        Path(c.preprocess_cache_dir), fingerprint_parts(c, cols, encoder_state),
        lambda: {col: load_collection(dspec, col) for col in cols}, load_model, cache_spec(c),
        reuse=(c.skip_preprocessing_if_cached or not allow_build) if reuse is None else reuse,
        progress=console_progress(use_rich=c.use_tui), log=log, before_commit=before_commit,
        allow_build=allow_build)


def run(config: Config, options: ModeOptions) -> int:
    result = ensure_cache(with_tiny_assets(config))
    m = result.cache.manifest
    for rel, entry in sorted(m["splits"].items()):
        skipped = sum(entry["skipped"].values())
        print(f"  {rel}: {entry['count']} records" + (f" ({skipped} rows skipped)" if skipped else ""))
    print(f"Cache {'reused' if result.reused else 'built'}: {result.cache.folder} "
          f"({m['latent_dtype']} latents, dim {m['latent_dim']}, fields {', '.join(m['fields']) or 'none'}).")
    return 0
