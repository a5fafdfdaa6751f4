"""The runtime decided once: what the machine gives a run's requests (device, precision, attention backend, TF32).

    resolve_runtime(request) -> Runtime (models/specs.py)   the one caller of the helpers below
    apply_tf32(runtime)                                     torch's TF32 switches, on CUDA only

The modes resolve the Runtime at their start, log its notes once (`log_notes`), and pass it down: the model
builder, the cache's encoder, the memory estimate and the cache fingerprint read it instead of deciding again.
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from latentbridge.models.backends import device_type, flash_attn_available
from latentbridge.models.precision import effective_precision
from latentbridge.models.specs import ATTENTION_IMPLEMENTATIONS, Runtime, RuntimeRequest, torch_dtype

log = logging.getLogger("latentbridge.models")

HALF_DTYPES = (torch.float16, torch.bfloat16)


def resolve_runtime(request: RuntimeRequest, device: Optional[str] = None, *, flash_available: Optional[bool] = None,
                    bf16_supported: Optional[bool] = None) -> Runtime:
    """The Runtime `request` gets on this machine. `device`: one already chosen (skips resolving
    request.device); `flash_available`, `bf16_supported`: what to assume instead of asking the machine."""
    device_note = None
    if device is None:
        device, device_note = resolve_device(request.device)
    precision, precision_note = resolve_precision(request.use_bf16, request.use_fp16, device, bf16_supported)
    attn, attention_note = resolve_attention(request.attn_implementation, device, torch_dtype(precision),
                                             flash_available)
    return Runtime(device=device, precision=precision, weight_precision=backbone_weight_precision(attn, precision),
                   attn_implementation=attn, tf32=request.tf32, device_note=device_note,
                   precision_note=precision_note, attention_note=attention_note)


def log_notes(runtime: Runtime) -> None:
    """One warning per request the machine could not meet; called once, by whoever resolved the runtime."""
    for note in runtime.notes:
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


def resolve_precision(use_bf16: bool, use_fp16: bool, device: str,
                      bf16_supported: Optional[bool] = None) -> tuple[str, Optional[str]]:
    """("bf16" | "fp32", note): models/precision.py's rule, with this machine's bf16 support."""
    kind = device_type(device)
    if bf16_supported is None:
        cuda_bf16 = kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        bf16_supported = kind == "mps" or cuda_bf16
    return effective_precision(use_bf16, use_fp16, kind, bf16_supported)


def resolve_attention(requested: str, device: str, dtype: torch.dtype,
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
    if device_type(device) != "cuda":
        why.append(f"the device is {device_type(device)}, not cuda")
    if dtype not in HALF_DTYPES:
        why.append(f"the dtype is {str(dtype).replace('torch.', '')}, not bf16/fp16")
    if not why:
        return "flash_attention_2", None
    return "sdpa", f"attention: flash_attention_2 requested but {' and '.join(why)}; using sdpa"


def backbone_weight_precision(attn_implementation: str, precision: str) -> str:
    """flash_attention_2 needs half-precision weights; the other backends keep fp32 weights under autocast."""
    return precision if attn_implementation == "flash_attention_2" else "fp32"


def apply_tf32(runtime: Runtime) -> bool:
    """Let float32 matmuls and cuDNN convolutions use TF32 on CUDA (Ampere and later run them ~8x faster at a
    10-bit mantissa; older GPUs ignore it). Off CUDA nothing changes: CPU and MPS matmuls never use TF32.
    Returns whether TF32 is now on. torch's per-backend `fp32_precision` settings, not the deprecated
    `allow_tf32` flags (mixing the two makes torch raise)."""
    if runtime.device_type != "cuda":
        return False
    precision = "tf32" if runtime.tf32 else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    return runtime.tf32
