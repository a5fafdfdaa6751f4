"""GGUF weights as an ordinary model folder: dequantised once by transformers (with the `gguf` package).

    gguf_file_in(path)                         the .gguf a model field names (the file, or a folder holding one)
    convert_gguf(gguf_file, out, causal=True)  write out/: config.json, model.safetensors (fp32), tokenizer

transformers refuses `save_pretrained` on a gguf-loaded model, so its dequantised state dict is copied into a
`from_config` model of the same architecture, which saves as a normal safetensors folder that every loader
here reads like any other backbone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from latentbridge.errors import UserError
from latentbridge.models.pretrained import quiet_transformers

GGUF_SUFFIX = ".gguf"


def gguf_file_in(location: str) -> Optional[Path]:
    """The GGUF file `location` names: itself, or the one .gguf in a folder without config.json; None otherwise."""
    path = Path(location).expanduser()
    if path.is_file() and path.suffix.lower() == GGUF_SUFFIX:
        return path
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == GGUF_SUFFIX and p.is_file())
    if len(found) > 1:
        raise UserError(f"The folder {location!r} holds {len(found)} GGUF files ({', '.join(p.name for p in found)}): "
                        "name the one to use.")
    return found[0] if found else None


def convert_gguf(gguf_file: Path, out: Path, causal: bool = True) -> None:
    """Dequantise `gguf_file` into the folder `out` (created): fp32 safetensors weights, config and tokenizer.
    `causal`: load it as a causal LM (a decoder), else as a bare encoder (AutoModel)."""
    quiet_transformers()
    folder, name = str(gguf_file.parent), gguf_file.name
    auto = AutoModelForCausalLM if causal else AutoModel
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        loaded = auto.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError, ImportError) as e:
        raise UserError(f"Cannot read the GGUF file {gguf_file}: {e}. Expected a GGUF model of an architecture "
                        "transformers can dequantise (pip install -r requirements.txt installs the gguf package).") from e
    model = auto.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
