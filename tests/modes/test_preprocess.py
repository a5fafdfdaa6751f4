"""`--mode preprocess` on the tiny preset: builds, reuses, matches the model's own encoder and targets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from latentbridge.cached_latents import ensure_cache, load_cache_encoder_state
from latentbridge.modes import ModeOptions
from latentbridge.modes.preprocess import run
from latentbridge.modes.train import stage_data
from latentbridge.models.specs import Runtime
from latentbridge.recipe import data_spec, model_spec, plan, with_tiny_assets
from tests.factories import assets_config, small_corpus_config


def test_preprocess_mode_builds_then_reuses(small_root, tmp_path, capsys):
    config = small_corpus_config(small_root, tmp_path)
    assert run(config, ModeOptions()).exit_code == 0
    assert "Cache built" in capsys.readouterr().out
    assert run(config, ModeOptions()).exit_code == 0
    assert "Cache reused" in capsys.readouterr().out
    cache = ensure_cache(config, log=lambda m: None).cache
    assert len(cache.split("dialogue", "train")) == 48
    assert len(cache.split("pretrain", "train")) == 60  # the larger of the stage 1 / stage 2 caps
    assert (cache.folder / "encoder_state.safetensors").exists()


def test_cached_records_match_the_model(small_root, tmp_path):
    from latentbridge.models.bridge import build_model

    config = small_corpus_config(small_root, tmp_path, cache_store_text=True, cache_store_input_ids=True)
    cache = ensure_cache(config, log=lambda m: None).cache
    model = build_model(model_spec(config, Runtime()), seed=config.seed).eval()
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
    base = ensure_cache(small_corpus_config(small_root, tmp_path), log=lambda m: None).cache
    same = ensure_cache(small_corpus_config(small_root, tmp_path, preprocess_batch_size=7), log=lambda m: None)
    other = ensure_cache(small_corpus_config(small_root, tmp_path, cache_store_text=True), log=lambda m: None)
    assert same.reused and same.cache.folder == base.folder
    assert not other.reused and other.cache.folder != base.folder


def test_each_stage_trains_on_its_capped_rows(small_root, tmp_path):
    config = small_corpus_config(small_root, tmp_path, pretrain_middle_max_samples_arxiv=5)
    cache = ensure_cache(config, log=lambda m: None).cache
    data = {stage.name: stage_data(cache, config.seed)(stage) for stage in plan(config)}  # as --mode train reads
    pre = cache.split("pretrain", "train")
    stage1, stage2 = data["pretrain_middle"].train.indices, data["pretrain_adapter"].train.indices
    assert len(stage2) == 30 and len(stage1) <= 60
    assert (pre.sources[stage1] == pre.source_names.index("arxiv")).sum() == 5
    assert len(data["finetune_middle"].train) == 48  # max_train_samples
    assert len(data["finetune_middle"].validation) == 24  # no max_validation_samples: the whole split


def test_validation_and_test_caps_limit_what_is_cached_and_validated(small_root, tmp_path):
    config = small_corpus_config(small_root, tmp_path, max_validation_samples=5, max_test_samples=3)
    cache = ensure_cache(config, log=lambda m: None).cache
    data = {stage.name: stage_data(cache, config.seed)(stage) for stage in plan(config)}
    assert len(cache.split("dialogue", "test")) == 3
    assert all(len(d.validation) == 5 for d in data.values())  # per-epoch validation of every stage
    sources = cache.split("pretrain", "validation").sources
    assert len(set(sources.tolist())) > 1  # the capped pretraining validation keeps the mix of sources


def test_a_bf16_request_on_cpu_reuses_the_fp32_cache(small_root, tmp_path):
    fp32 = ensure_cache(small_corpus_config(small_root, tmp_path), log=lambda m: None).cache
    bf16 = ensure_cache(small_corpus_config(small_root, tmp_path, use_bf16=True, use_fp16=True), log=lambda m: None)
    assert bf16.reused and bf16.cache.folder == fp32.folder  # the encoder computed in fp32 both times


def test_without_run_preprocessing_a_missing_cache_is_a_clear_error(small_root, tmp_path):
    from latentbridge.errors import UserError

    config = small_corpus_config(small_root, tmp_path)
    with pytest.raises(UserError, match="run_preprocessing is off"):
        ensure_cache(config, log=lambda m: None, allow_build=False)
    ensure_cache(config, log=lambda m: None)
    reused = ensure_cache(config.replace(skip_preprocessing_if_cached=False), log=lambda m: None, allow_build=False)
    assert reused.reused


def test_preprocess_mode_pretrains_on_a_mix_and_says_what_it_realised(small_root, tmp_path, capsys):
    wiki = small_root / "small" / "pretrain" / "wikitext.jsonl"
    config = small_corpus_config(small_root, tmp_path, pretrain_mix=f"dataset:1,{wiki}:1", max_seq_len=24).replace(
        max_train_samples=None, pretrain_middle_max_samples=None, pretrain_adapter_max_samples=None)
    assert run(config, ModeOptions()).exit_code == 0
    out = capsys.readouterr().out
    entry = ensure_cache(config, log=lambda m: None).cache.manifest["splits"]["pretrain/train"]
    assert set(entry["sources"]) == {"dataset", "wikitext"} and entry["weights"] == {"dataset": 1.0, "wikitext": 1.0}
    share = entry["sources"]["dataset"] / entry["count"]
    assert 0.4 < share < 0.6, entry["sources"]
    assert "pretrain/train: mix realised dataset" in out
    assert f"mix: dataset {entry['sources']['dataset']}, wikitext {entry['sources']['wikitext']})" in out
    assert "inputs were longer than max_seq_len (24 tokens)" in out and "Raise --max-seq-len" in out


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
