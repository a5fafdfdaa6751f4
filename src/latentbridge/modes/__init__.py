"""One module per `--mode`; each exposes `run(config, options) -> exit code`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ModeOptions:
    """Per-invocation options that are not part of the model's Config (they are never saved with it)."""

    sources: dict[str, str] = field(default_factory=dict)
    format: str = "table"
    save_config: Optional[Path] = None
    resume: Optional[str] = None
    checkpoint: Optional[Path] = None
    text: Optional[str] = None
    input_file: Optional[Path] = None
    output_file: Optional[Path] = None
    split: Optional[str] = None
    baselines: bool = False
