"""`--mode preprocess` on the tiny preset: builds, reuses, matches the model's own encoder and targets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from latentbridge.modes import ModeOptions
from latentbridge.modes.preprocess import (cache_spec, data_spec, ensure_cache, load_cache_encoder_state, run, stage_rows,
                                          with_tiny_assets)
from tests.factories import assets_config, tiny_config


@pytest.fixture(scope="session")
def small_root(tiny_root: Path) -> Path:
    """The shared tiny assets plus a cut-down corpus beside them."""
    root = tiny_root
    # a cut-down copy of the corpus keeps each build to seconds: 96/24/24 dialogues, 120 documents a source
    sizes = {"train": 96, "validation": 24, "test": 24, "wikitext": 120, "arxiv": 120, "english": 120}
    for path in (root / "data").rglob("*.jsonl"):
        small = root / "small" / path.relative_to(root / "data")
        small.parent.mkdir(parents=True, exist_ok=True)
        small.write_text("".join(path.read_text().splitlines(keepends=True)[: sizes[path.stem]]))
    return root


def _config(root: Path, tmp: Path, **overrides):
    """The shared tiny models on the cut-down corpus (tiny_assets_dir none: models as they are, never rebuilt)."""
    small = root / "small"
    return assets_config(
        root, tiny_assets_dir=None, dataset_name=str(small / "samsum"), wikitext_dataset=str(small / "pretrain/wikitext.jsonl"),
        arxiv_dataset=str(small / "pretrain/arxiv.jsonl"), english_pretrain_dataset=str(small / "pretrain/english.jsonl"),
        preprocess_cache_dir=str(tmp / "cache"), max_train_samples=48, pretrain_middle_max_samples=60,
        pretrain_adapter_max_samples=30, use_tui=False, **overrides)


def test_preprocess_mode_builds_then_reuses(small_root, tmp_path, capsys):
    config = _config(small_root, tmp_path)
    assert run(config, ModeOptions()) == 0
    assert "Cache built" in capsys.readouterr().out
    assert run(config, ModeOptions()) == 0
    assert "Cache reused" in capsys.readouterr().out
    cache = ensure_cache(config, log=lambda m: None).cache
    assert len(cache.split("dialogue", "train")) == 48
    assert len(cache.split("pretrain", "train")) == 60  # the larger of the stage 1 / stage 2 caps
    assert (cache.folder / "encoder_state.safetensors").exists()


def test_cached_records_match_the_model(small_root, tmp_path):
    from latentbridge.models.bridge import build_model
    from latentbridge.modes.specs import model_spec

    config = _config(small_root, tmp_path, cache_store_text=True, cache_store_input_ids=True)
    cache = ensure_cache(config, log=lambda m: None).cache
    model = build_model(model_spec(config, "cpu"), seed=config.seed).eval()
    from safetensors.torch import load_file

    cached = load_file(str(cache.folder / "encoder_state.safetensors"))
    own = model.encoder.state_dict()
    for key, value in cached.items():  # a model seeded like the run already has the cache's compressor
        torch.testing.assert_close(own[key], value)
    load_cache_encoder_state(cache, model.encoder)
    split = cache.split("dialogue", "validation")
    recs = [split[i] for i in range(4)]
    ids, mask = model.encoder.tokenize([r["text"] for r in recs], config.max_seq_len)
    with torch.no_grad():
        latents, lmask = model.encoder(ids, mask)
    for r, lat, m in zip(recs, latents, lmask):
        np.testing.assert_array_equal(r["input_ids"], ids[0:0].new_tensor(r["input_ids"]).numpy())
        ref = lat[m].numpy()
        cos = (ref * r["input_latents"]).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(r["input_latents"], axis=-1))
        assert r["input_latents"].shape == ref.shape and cos.min() > 0.999
    tids, tmask = model.decoder.target_ids([r["target_text"] for r in recs], config.max_target_len)
    for k, r in enumerate(recs):
        assert r["target_ids"].tolist() == tids[k][tmask[k].bool()].tolist()
    assert split.pad_token_id == model.decoder.pad_id


def test_batch_size_does_not_change_the_cache_but_fields_do(small_root, tmp_path):
    base = ensure_cache(_config(small_root, tmp_path), log=lambda m: None).cache
    same = ensure_cache(_config(small_root, tmp_path, preprocess_batch_size=7), log=lambda m: None)
    other = ensure_cache(_config(small_root, tmp_path, cache_store_text=True), log=lambda m: None)
    assert same.reused and same.cache.folder == base.folder
    assert not other.reused and other.cache.folder != base.folder


def test_caps_map_to_the_largest_stage_need(tmp_path):
    config = tiny_config(max_train_samples=None, pretrain_middle_max_samples_wikitext=100,
                         pretrain_adapter_max_samples_wikitext=300, pretrain_middle_max_samples_arxiv=50,
                         pretrain_adapter_max_samples_arxiv=None, pretrain_adapter_max_samples=200,
                         finetune_middle_max_samples=10, finetune_adapter_max_samples=20)
    spec = data_spec(config)
    caps = {s.name: s.max_samples for s in spec.pretrain}
    assert caps == {"wikitext": 200, "arxiv": 200, "english": None}  # stage 1 has no english cap
    assert spec.dialogue_max_train == 20 and spec.pretrain_max_train is None
    assert cache_spec(config).int8 is config.cache_store_embeddings_int8


def test_stage_rows_apply_each_stage_caps(small_root, tmp_path):
    config = _config(small_root, tmp_path, pretrain_middle_max_samples_arxiv=5)
    cache = ensure_cache(config, log=lambda m: None).cache
    pre = cache.split("pretrain", "train")
    stage1 = stage_rows(config, pre, "pretrain_middle")
    stage2 = stage_rows(config, pre, "pretrain_adapter")
    assert len(stage2) == 30 and len(stage1) <= 60
    assert (pre.sources[stage1] == pre.source_names.index("arxiv")).sum() == 5
    assert len(stage_rows(config, cache.split("dialogue", "validation"), "finetune_middle")) == 24


def test_without_run_preprocessing_a_missing_cache_is_a_clear_error(small_root, tmp_path):
    from latentbridge.errors import UserError

    config = _config(small_root, tmp_path)
    with pytest.raises(UserError, match="run_preprocessing is off"):
        ensure_cache(config, log=lambda m: None, allow_build=False)
    ensure_cache(config, log=lambda m: None)
    reused = ensure_cache(config.replace(skip_preprocessing_if_cached=False), log=lambda m: None, allow_build=False)
    assert reused.reused


def _docs(folder: Path, words: str) -> Path:
    import json

    folder.mkdir(parents=True)
    for split, n in (("train", 40), ("validation", 8), ("test", 8)):
        rows = [{"qualname": f"mod.f{i}", "body": f"This function {words} number {i}. It returns the result.",
                 "summary_line": f"Return the {words} of item {i}."} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_the_tiny_preset_on_another_dataset_builds_models_and_pretrains_on_its_texts(tmp_path, monkeypatch):
    monkeypatch.setattr("latentbridge.assets.CORPUS_LM_STEPS", 2)  # a short warm-up keeps this fast
    root = tmp_path / "tiny"
    config = assets_config(root, dataset_name=str(_docs(tmp_path / "a", "squares the matrix")),
                           dataset_input_template="{qualname}: {body}", dataset_target_field="summary_line",
                           preprocess_cache_dir=str(tmp_path / "cache"), use_tui=False)
    resolved = with_tiny_assets(config, log=lambda m: None)
    encoder, decoder = Path(resolved.modernbert_model), Path(resolved.gpt2_model)
    assert encoder.parent.parent.parent == root / "corpora" and decoder.parent == encoder.parent
    assert not (root / "data").exists()  # the bundled corpus is not needed
    assert [(s.name, s.task_texts) for s in data_spec(resolved).pretrain] == [("dataset", True)]
    assert with_tiny_assets(resolved, log=lambda m: None) == resolved  # the same corpus: the same models
    assert with_tiny_assets(config, log=lambda m: None) == resolved
    other = with_tiny_assets(config.replace(dataset_name=str(_docs(tmp_path / "b", "sorts the list"))),
                             log=lambda m: None)
    assert other.gpt2_model != resolved.gpt2_model
    cache = ensure_cache(resolved, log=lambda m: None).cache
    pretrain = cache.split("pretrain", "train")
    assert {pretrain.source_names[k] for k in set(pretrain.sources.tolist())} == {"dataset"}
    assert len(pretrain) > 40  # pairs cut from the inputs and targets of 40 rows


def test_the_bundled_corpus_keeps_its_models_and_pretraining_sources(tiny_root):
    config = assets_config(tiny_root)
    assert with_tiny_assets(config, log=lambda m: None) == config
    spec = data_spec(config)
    assert [(s.name, s.task_texts) for s in spec.pretrain] == [("wikitext", False), ("arxiv", False),
                                                               ("english", False)]
    assert not (tiny_root / "corpora").exists()


def test_the_bundled_dialogues_with_other_pretraining_text_get_models_of_both(tmp_path, monkeypatch):
    monkeypatch.setattr("latentbridge.assets.CORPUS_LM_STEPS", 2)
    root = tmp_path / "tiny"
    wiki = tmp_path / "wiki.jsonl"
    wiki.write_text("".join(f'{{"text": "Zanzibar spice trade item {i}. It went on for years."}}\n' for i in range(30)))
    config = assets_config(root, wikitext_dataset=str(wiki), use_tui=False)
    resolved = with_tiny_assets(config, log=lambda m: None)
    assert (root / "data" / "samsum" / "train.jsonl").exists()  # the bundled dialogues are still written
    assert "corpora" in resolved.gpt2_model
    assert [s.name for s in data_spec(resolved).pretrain] == ["wikitext", "arxiv", "english"]
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(resolved.modernbert_model).get_vocab()
    assert any("Zanzibar" in token for token in vocab) and any("Anna" in token for token in vocab)
