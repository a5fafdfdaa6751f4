import logging

import pytest
import torch

from latentbridge.errors import UserError
from latentbridge.models.backends import apply_tf32, resolve_attention, resolve_device, resolve_dtype
from latentbridge.models.bridge import build_model
from tests.factories import tiny_spec


def test_flash_attention_falls_back_to_sdpa_with_a_reason():
    impl, note = resolve_attention("flash_attention_2", "cpu", torch.float32, flash_available=False)
    assert impl == "sdpa"
    assert "flash_attn package does not import" in note and "cpu" in note and "float32" in note


def test_flash_attention_needs_cuda_and_half_precision():
    assert resolve_attention("flash_attention_2", "cuda", torch.bfloat16, flash_available=True) == (
        "flash_attention_2", None)
    assert resolve_attention("flash_attention_2", "cuda", torch.float32, flash_available=True)[0] == "sdpa"
    assert resolve_attention("flash_attention_2", "cpu", torch.bfloat16, flash_available=True)[0] == "sdpa"


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_other_backends_are_honoured_silently(impl):
    assert resolve_attention(impl, "cpu", torch.float32) == (impl, None)


def test_precision_is_fp32_on_cpu_with_a_note_when_half_was_asked():
    assert resolve_dtype(True, True, "cpu") == (torch.float32, "precision: bf16 requested but the device is cpu; "
                                                               "using fp32")
    assert resolve_dtype(False, False, "cpu") == (torch.float32, None)


def test_precision_prefers_bf16_and_never_uses_fp16():
    assert resolve_dtype(True, True, "cuda", bf16_supported=True) == (torch.bfloat16, None)
    dtype, note = resolve_dtype(False, True, "cuda", bf16_supported=True)
    assert dtype == torch.bfloat16 and "fp16" in note
    dtype, note = resolve_dtype(False, True, "cuda", bf16_supported=False)
    assert dtype == torch.float32 and "unstable in fp16" in note


def test_unavailable_cuda_falls_back_to_cpu():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert resolve_device("cuda")[0] == "cpu" and resolve_device("auto") == ("cpu", None)


def test_build_logs_the_attention_fallback_once(tiny_assets, caplog):
    import dataclasses

    spec = tiny_spec(tiny_assets)
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, attn_implementation="flash_attention_2"))
    with caplog.at_level(logging.WARNING, logger="latentbridge.models"):
        model = build_model(spec)
    lines = [r.getMessage() for r in caplog.records if "attention" in r.getMessage()]
    assert len(lines) == 1 and "using sdpa" in lines[0]
    assert model.attn_implementation == "sdpa"
    assert model.encoder.backbone.config._attn_implementation == "sdpa"
    assert model.decoder.model.config._attn_implementation == "sdpa"


def test_hub_name_without_a_local_copy_is_a_user_error_naming_the_way_forward(tiny_assets):
    spec = tiny_spec(tiny_assets, encoder={"model": "nobody-here/ModernBERT-nothing"})
    with pytest.raises(UserError) as e:
        build_model(spec)
    assert "modernbert_model" in str(e.value) and "--preset tiny" in str(e.value) and "local folder" in str(e.value)


def test_missing_local_folder_is_a_user_error(tiny_assets, tmp_path):
    with pytest.raises(UserError, match="gpt2_model"):
        build_model(tiny_spec(tiny_assets, decoder={"model": str(tmp_path / "no" / "such" / "gemma")}))


def test_folder_without_config_is_a_user_error(tiny_assets, tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        build_model(tiny_spec(tiny_assets, decoder={"model": str(tmp_path)}))


def test_hidden_dim_mismatch_names_the_field(tiny_assets):
    with pytest.raises(UserError, match="gpt2_hidden_dim is 640 but .* hidden size 64"):
        build_model(tiny_spec(tiny_assets, decoder={"expected_hidden_dim": 640}))
    with pytest.raises(UserError, match="modernbert_hidden_dim"):
        build_model(tiny_spec(tiny_assets, encoder={"expected_hidden_dim": 768}))


def test_too_many_unfrozen_layers_is_a_user_error(tiny_assets):
    with pytest.raises(UserError, match="num_encoder_unfrozen_layers"):
        build_model(tiny_spec(tiny_assets, encoder={"unfrozen_layers": 5}))


def test_tf32_is_switched_on_cuda_only():
    settings = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [s.fp32_precision for s in settings]
    try:
        assert apply_tf32(True, "cpu") is False and [s.fp32_precision for s in settings] == before
        assert apply_tf32(True, "cuda") is True and [s.fp32_precision for s in settings] == ["tf32", "tf32"]
        assert apply_tf32(False, "cuda:0") is False and [s.fp32_precision for s in settings] == ["ieee", "ieee"]
    finally:
        for s, value in zip(settings, before):
            s.fp32_precision = value
