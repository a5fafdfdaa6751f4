"""The precision rule: which compute precision a run gets for the flags it asked for, on which device.

Torch-free, so `--mode config` can show it; models/runtime.py applies it with the hardware's answers.
bf16 is preferred; fp16 is never used: training in it needs loss scaling, which the trainer does not do (and some
families, Gemma 3 among them, overflow in fp16 whatever the scaling), so a fp16 request gets bf16 where the device
has it; a CPU computes in fp32.
"""

from __future__ import annotations

from typing import Optional

PRECISIONS = ("bf16", "fp32")


def effective_precision(use_bf16: bool, use_fp16: bool, device_kind: str,
                        bf16_supported: bool) -> tuple[str, Optional[str]]:
    """(precision, note): "bf16" or "fp32", and a note when that differs from what was asked for."""
    asked = "bf16" if use_bf16 else "fp16" if use_fp16 else None
    if asked is None:
        return "fp32", None
    if device_kind == "cpu":
        return "fp32", f"precision: {asked} requested but the device is cpu; using fp32"
    if bf16_supported:
        note = None if use_bf16 else "precision: fp16 requested but latentbridge trains in bf16 or fp32; using bf16"
        return "bf16", note
    return "fp32", (f"precision: {asked} requested but this {device_kind} device has no bf16 and latentbridge "
                    "does not train in fp16 (no loss scaling; Gemma 3 is unstable in fp16); using fp32")
