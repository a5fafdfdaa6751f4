"""Peak memory of a stage, for its metrics lines: allocated CUDA memory, or the process's peak RSS on a CPU."""

from __future__ import annotations

from pathlib import Path

import psutil
import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: each stage reports its own (on Linux the process's RSS high-water mark is reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the CPU figure is then the current RSS
        pass


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory since `reset_peak_memory`: allocated CUDA memory, or the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 2**20  # kB
    except (OSError, IndexError):
        return psutil.Process().memory_info().rss / 2**30
