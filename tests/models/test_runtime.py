import ast
import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from latentbridge.models.bridge import build_model
from latentbridge.models.runtime import (apply_tf32, log_notes, resolve_attention, resolve_device, resolve_precision,
                                         resolve_runtime)
from latentbridge.models.specs import Runtime, RuntimeRequest
from tests.factories import tiny_spec

SRC = Path(__file__).resolve().parents[2] / "src" / "latentbridge"
BENCH = Path(__file__).resolve().parents[2] / "bench"
# what decides the runtime piece by piece: only models/runtime.py calls these, through resolve_runtime
RESOLUTION_HELPERS = ("resolve_device", "resolve_precision", "resolve_attention", "backbone_weight_precision",
                      "apply_tf32")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")


# --- the Runtime as a whole

def test_bf16_requested_on_cpu_computes_in_fp32_with_a_note():
    runtime = resolve_runtime(RuntimeRequest(device="cpu", use_bf16=True))
    assert (runtime.device, runtime.precision, runtime.weight_precision) == ("cpu", "fp32", "fp32")
    assert runtime.compute_dtype == torch.float32 and runtime.weight_dtype == torch.float32
    assert runtime.notes == ("precision: bf16 requested but the device is cpu; using fp32",)


def test_flash_attention_on_cpu_falls_back_to_sdpa_with_its_reasons():
    runtime = resolve_runtime(RuntimeRequest(device="cpu", attn_implementation="flash_attention_2"),
                              flash_available=False)
    assert runtime.attn_implementation == "sdpa" and runtime.weight_precision == "fp32"
    assert runtime.attention_note == ("attention: flash_attention_2 requested but the flash_attn package does not "
                                      "import and the device is cpu, not cuda and the dtype is float32, not bf16/fp16; "
                                      "using sdpa")


@NO_CUDA
def test_cuda_requested_without_one_runs_on_cpu_with_a_note():
    runtime = resolve_runtime(RuntimeRequest(device="cuda"))
    assert runtime.device == "cpu" and runtime.device_note == "device: cuda requested but not available; using cpu"
    assert resolve_runtime(RuntimeRequest(device="auto")).notes == ()


def test_flash_attention_loads_the_backbones_in_the_compute_precision():
    flash = resolve_runtime(RuntimeRequest(use_bf16=True, attn_implementation="flash_attention_2"), "cuda",
                            flash_available=True, bf16_supported=True)
    assert (flash.precision, flash.attn_implementation, flash.weight_precision) == ("bf16", "flash_attention_2", "bf16")
    assert flash.weight_dtype == torch.bfloat16 and flash.notes == ()


def test_other_backends_keep_fp32_weights_under_autocast():
    sdpa = resolve_runtime(RuntimeRequest(use_bf16=True), "cuda", bf16_supported=True)
    assert (sdpa.precision, sdpa.attn_implementation, sdpa.weight_precision) == ("bf16", "sdpa", "fp32")
    assert sdpa.compute_dtype == torch.bfloat16 and sdpa.weight_dtype == torch.float32


def test_a_runtime_moves_to_a_rank_device_of_the_same_type_only():
    runtime = resolve_runtime(RuntimeRequest(use_bf16=True), "cuda", bf16_supported=True)
    assert runtime.on("cuda:1") == dataclasses.replace(runtime, device="cuda:1")
    with pytest.raises(ValueError, match="resolved for cuda"):
        runtime.on("cpu")


def test_the_notes_are_logged_once_each(caplog):
    runtime = resolve_runtime(RuntimeRequest(device="cpu", use_bf16=True, attn_implementation="flash_attention_2"),
                              flash_available=False)
    with caplog.at_level(logging.WARNING, logger="latentbridge.models"):
        log_notes(runtime)
    assert [r.getMessage() for r in caplog.records] == list(runtime.notes) and len(runtime.notes) == 2


def test_a_model_built_on_a_flash_request_off_cuda_runs_sdpa(tiny_assets, caplog):
    runtime = resolve_runtime(RuntimeRequest(device="cpu", attn_implementation="flash_attention_2"))
    spec = tiny_spec(tiny_assets, runtime={"resolved": runtime})
    with caplog.at_level(logging.WARNING, logger="latentbridge.models"):
        model = build_model(spec)
    assert not caplog.records  # the builder decides nothing, so it has nothing to say
    assert model.attn_implementation == "sdpa" and model.compute_dtype == torch.float32
    assert model.encoder.backbone.config._attn_implementation == "sdpa"
    assert model.decoder.model.config._attn_implementation == "sdpa"


# --- the helpers resolve_runtime is made of

def test_flash_attention_needs_cuda_and_half_precision():
    assert resolve_attention("flash_attention_2", "cuda", torch.bfloat16, flash_available=True) == (
        "flash_attention_2", None)
    assert resolve_attention("flash_attention_2", "cuda", torch.float32, flash_available=True)[0] == "sdpa"
    assert resolve_attention("flash_attention_2", "cpu", torch.bfloat16, flash_available=True)[0] == "sdpa"


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_other_backends_are_honoured_silently(impl):
    assert resolve_attention(impl, "cpu", torch.float32) == (impl, None)


def test_precision_prefers_bf16_and_never_uses_fp16():
    assert resolve_precision(True, True, "cuda", bf16_supported=True) == ("bf16", None)
    precision, note = resolve_precision(False, True, "cuda", bf16_supported=True)
    assert precision == "bf16" and "fp16" in note
    precision, note = resolve_precision(False, True, "cuda", bf16_supported=False)
    assert precision == "fp32" and "unstable in fp16" in note
    assert resolve_precision(False, False, "cpu") == ("fp32", None)


@NO_CUDA
def test_unavailable_cuda_falls_back_to_cpu():
    assert resolve_device("cuda")[0] == "cpu" and resolve_device("auto") == ("cpu", None)


def test_tf32_is_switched_on_cuda_only():
    settings = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [s.fp32_precision for s in settings]
    try:
        assert apply_tf32(Runtime(device="cpu", tf32=True)) is False and [s.fp32_precision for s in settings] == before
        assert apply_tf32(Runtime(device="cuda", tf32=True)) is True
        assert [s.fp32_precision for s in settings] == ["tf32", "tf32"]
        assert apply_tf32(Runtime(device="cuda:0", tf32=False)) is False
        assert [s.fp32_precision for s in settings] == ["ieee", "ieee"]
    finally:
        for s, value in zip(settings, before):
            s.fp32_precision = value


# --- decided once

def _callers(helpers: tuple[str, ...], roots: tuple[Path, ...]) -> dict[str, list[str]]:
    """{file: [helper called or imported there]} over the Python files under `roots`."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        hits = sorted(names & set(helpers))
        if hits:
            found[str(path)] = hits
    return found


def test_only_the_runtime_module_resolves_the_runtime():
    """A second module asking the machine for the device, precision or attention backend (or switching TF32)
    would be a second place where the runtime is decided: they all take the Runtime instead. The model builder
    applies the resolved TF32 choice, as every model is built on the runtime it is handed."""
    callers = _callers(RESOLUTION_HELPERS, (SRC, BENCH))
    callers.pop(str(SRC / "models" / "runtime.py"))
    assert callers == {str(SRC / "models" / "bridge.py"): ["apply_tf32"]}


def test_the_decided_once_check_sees_a_second_caller(tmp_path):
    (tmp_path / "mode.py").write_text("from latentbridge.models.runtime import resolve_device\n"
                                      "device, note = resolve_device('auto')\n")
    assert _callers(RESOLUTION_HELPERS, (tmp_path,)) == {str(tmp_path / "mode.py"): ["resolve_device"]}
