"""What runs a model on its device: autocast, compile, the flash-attn probe (the decisions: models/runtime.py)."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Union

import torch


def flash_attn_available() -> bool:
    """True when the flash_attn package imports (not only when it is installed)."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # a broken build raises anything from ImportError to OSError
        return False
    return True


def device_type(device: Union[str, torch.device]) -> str:
    """"cuda" of "cuda:1" or of torch.device("cuda", 1)."""
    return torch.device(device).type if not isinstance(device, torch.device) else device.type


def autocast(device: Union[str, torch.device], dtype: torch.dtype):
    """An autocast context for half dtypes, a no-op for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=dtype)


def compile_in_place(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """torch.compile the module's forward in place: state_dict keys stay free of `_orig_mod.`."""
    module.compile(mode=None if mode == "default" else mode)
    return module
