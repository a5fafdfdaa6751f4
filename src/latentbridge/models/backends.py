"""Attention backend, precision and compile decisions, each made once with a note for the log."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from typing import Optional, Union

import torch

from latentbridge.models.precision import effective_precision
from latentbridge.models.specs import ATTENTION_IMPLEMENTATIONS

log = logging.getLogger("latentbridge.models")

HALF_DTYPES = (torch.float16, torch.bfloat16)
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def flash_attn_available() -> bool:
    """True when the flash_attn package imports (not only when it is installed)."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # a broken build raises anything from ImportError to OSError
        return False
    return True


def _device_type(device: Union[str, torch.device]) -> str:
    return torch.device(device).type if not isinstance(device, torch.device) else device.type


def resolve_attention(requested: str, device: Union[str, torch.device], dtype: torch.dtype,
                      flash_available: Optional[bool] = None) -> tuple[str, Optional[str]]:
    """(implementation, note): flash_attention_2 only with flash_attn importable, CUDA and a half dtype;
    otherwise sdpa, with one note saying why. eager and sdpa are honoured as asked."""
    if requested not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation {requested!r} is not one of {ATTENTION_IMPLEMENTATIONS}")
    if requested != "flash_attention_2":
        return requested, None
    why = []
    if not (flash_attn_available() if flash_available is None else flash_available):
        why.append("the flash_attn package does not import")
    if _device_type(device) != "cuda":
        why.append(f"the device is {_device_type(device)}, not cuda")
    if dtype not in HALF_DTYPES:
        why.append(f"the dtype is {str(dtype).replace('torch.', '')}, not bf16/fp16")
    if not why:
        return "flash_attention_2", None
    return "sdpa", f"attention: flash_attention_2 requested but {' and '.join(why)}; using sdpa"


def resolve_precision(use_bf16: bool, use_fp16: bool, device: Union[str, torch.device],
                      bf16_supported: Optional[bool] = None) -> tuple[str, Optional[str]]:
    """("bf16" | "fp32", note): models/precision.py's rule, with this machine's bf16 support."""
    kind = _device_type(device)
    if bf16_supported is None:
        cuda_bf16 = kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        bf16_supported = kind == "mps" or cuda_bf16
    return effective_precision(use_bf16, use_fp16, kind, bf16_supported)


def resolve_dtype(use_bf16: bool, use_fp16: bool, device: Union[str, torch.device],
                  bf16_supported: Optional[bool] = None) -> tuple[torch.dtype, Optional[str]]:
    """(compute dtype, note) of `resolve_precision`."""
    precision, note = resolve_precision(use_bf16, use_fp16, device, bf16_supported)
    return DTYPES[precision], note


def autocast(device: Union[str, torch.device], dtype: torch.dtype):
    """An autocast context for half dtypes, a no-op for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


def compile_in_place(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """torch.compile the module's forward in place: state_dict keys stay free of `_orig_mod.`."""
    module.compile(mode=None if mode == "default" else mode)
    return module


def apply_tf32(enabled: bool, device: Union[str, torch.device]) -> bool:
    """Let float32 matmuls and cuDNN convolutions use TF32 on CUDA (Ampere and later run them ~8x faster at a
    10-bit mantissa; older GPUs ignore it). Off CUDA nothing changes: CPU and MPS matmuls never use TF32.
    Returns whether TF32 is now on. torch's per-backend `fp32_precision` settings, not the deprecated
    `allow_tf32` flags (mixing the two makes torch raise)."""
    if _device_type(device) != "cuda":
        return False
    precision = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    return enabled


def log_note(note: Optional[str]) -> None:
    if note:
        log.warning(note)


def resolve_device(requested: str) -> tuple[str, Optional[str]]:
    """(device, note): auto picks cuda, then mps, then cpu; an unavailable cuda/mps falls back to cpu."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return ("cuda" if cuda else "mps" if mps else "cpu"), None
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        return "cpu", f"device: {requested} requested but not available; using cpu"
    return requested, None
