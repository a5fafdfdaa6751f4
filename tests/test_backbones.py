"""GGUF backbones: a tiny random Llama written with the gguf package's writer, dequantised once and reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentbridge import backbones
from latentbridge.errors import UserError
from latentbridge.files import HASH_NAME, file_digest
from latentbridge.models.gguf import gguf_file_in
from latentbridge.recipe import checkpoint_fingerprint, with_gguf_folders
from tests.factories import tiny_config

gguf = pytest.importorskip("gguf")

VOCAB, HIDDEN, LAYERS, FFN = 64, 16, 2, 32


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (fp32 tensors, a sentencepiece-style vocabulary) as one GGUF file."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(64)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    tokens = ["<unk>", "<s>", "</s>"] + [chr(ord("a") + i % 26) * (1 + i // 26) for i in range(VOCAB - 3)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([2, 3, 3] + [1] * (VOCAB - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def tensor(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", tensor(VOCAB, HIDDEN))
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", tensor(HIDDEN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", tensor(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_up.weight", tensor(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_down.weight", tensor(HIDDEN, FFN))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    w.add_tensor("output.weight", tensor(VOCAB, HIDDEN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def test_converted_once_then_reused(tiny_gguf, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls = []
    convert = backbones.convert_gguf
    monkeypatch.setattr(backbones, "convert_gguf", lambda *a, **k: (calls.append(a), convert(*a, **k)))
    folder = backbones.ensure_gguf_folder(tiny_gguf, tmp_path)
    digest = file_digest(tiny_gguf, HASH_NAME)
    assert folder == tmp_path / digest[:16] and len(calls) == 1
    manifest = json.loads((folder / backbones.MANIFEST).read_text())
    assert manifest["source"][HASH_NAME] == digest
    assert manifest["files"]["model.safetensors"] == file_digest(folder / "model.safetensors", HASH_NAME)
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert (model.config.model_type, model.config.hidden_size, model.config.num_hidden_layers) == ("llama", HIDDEN, 2)
    assert len(tok) == VOCAB
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert backbones.ensure_gguf_folder(tiny_gguf, tmp_path) == folder and len(calls) == 1
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_half_built_folder_is_rebuilt(tiny_gguf, tmp_path):
    folder = backbones.ensure_gguf_folder(tiny_gguf, tmp_path)
    (folder / "model.safetensors").unlink()
    assert (backbones.ensure_gguf_folder(tiny_gguf, tmp_path) / "model.safetensors").is_file()


def test_config_fields_naming_gguf_point_at_the_converted_folder(tiny_gguf, tmp_path):
    c = tiny_config(gpt2_model=str(tiny_gguf.parent), backbone_cache_dir=str(tmp_path / "backbones"))
    resolved = with_gguf_folders(c)
    digest = file_digest(tiny_gguf, HASH_NAME)
    assert Path(resolved.gpt2_model) == tmp_path / "backbones" / digest[:16]
    assert resolved.modernbert_model == c.modernbert_model and with_gguf_folders(resolved) == resolved
    other = write_tiny_llama_gguf(tmp_path / "other.gguf", seed=1)
    swapped = with_gguf_folders(c.replace(gpt2_model=str(other)))
    assert checkpoint_fingerprint(swapped) != checkpoint_fingerprint(resolved)  # the backbone digest differs


def test_a_folder_with_two_gguf_files_is_a_clear_error(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(UserError, match="2 GGUF files"):
        gguf_file_in(str(tmp_path))
    assert gguf_file_in(str(tmp_path / "a.gguf")) == tmp_path / "a.gguf"
    assert gguf_file_in(str(tmp_path / "missing")) is None
