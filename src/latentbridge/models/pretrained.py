"""Load a pretrained model or tokenizer from a local folder or the local hub cache, never implicitly online."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from transformers.utils import logging as hf_logging

from latentbridge.errors import UserError


def quiet_transformers() -> None:
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_pretrained(loader: Callable[..., Any], name: str, field: str, what: str,
                    allow_download: bool = False, **kwargs: Any) -> Any:
    """`loader.from_pretrained(name, **kwargs)` where `name` is a local folder or a hub name already in the
    local Hugging Face cache. Anything else is a UserError naming `field` and the offline ways forward."""
    quiet_transformers()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"{field}: the folder {name!r} has no config.json, so it is not a saved model folder. "
                            "Point it at a folder written by save_pretrained, or use --preset tiny.")
        if what != "tokenizer":
            _refuse_pickled_weights(path, field)
        try:
            return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
        except (OSError, ValueError) as e:
            raise UserError(f"{field}: could not load the {what} from the folder {name!r}: {e}") from e
    looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1
    try:
        return loader.from_pretrained(name, local_files_only=not allow_download, **kwargs)
    except (OSError, ValueError) as e:
        if looks_local:
            reason = f"there is no folder {name!r}"
        elif allow_download:
            reason = f"downloading {name!r} failed ({e.__class__.__name__})"
        else:
            reason = (f"{name!r} is not a local folder and not in the local Hugging Face cache, and "
                      "latentbridge never downloads models implicitly (no machine here reaches a model hub)")
        raise UserError(f"{field}: cannot load the {what}: {reason}. Ways forward: run with --preset tiny "
                        "(small models built offline on first use), or set --"
                        f"{field.replace('_', '-')} to a local folder holding a save_pretrained copy "
                        "(config.json, weights and tokenizer).") from e


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def _refuse_pickled_weights(folder: Path, field: str) -> None:
    """A model folder whose weights are only pickled (pytorch_model.bin) is refused before torch would
    unpickle it: loading runs no pickle, and safetensors holds the same tensors."""
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
    if pickled:
        raise UserError(f"{field}: the folder {str(folder)!r} holds its weights only as pickled {pickled[0]}"
                        f"{f' (and {len(pickled) - 1} more)' if len(pickled) > 1 else ''}, which latentbridge never "
                        "loads (unpickling can run code). Convert it to safetensors once, where you trust the file: "
                        "`AutoModel.from_pretrained(FOLDER).save_pretrained(FOLDER, safe_serialization=True)`, "
                        "then remove the .bin file.")


def check_hidden_dim(actual: int, expected: int | None, field: str, name: str) -> None:
    """The config's declared hidden size must match the loaded model: a mismatch is a UserError naming the field."""
    if expected is not None and expected != actual:
        raise UserError(f"{field} is {expected} but the model {name!r} has hidden size {actual}. "
                        f"Set --{field.replace('_', '-')} {actual} (the field must describe the loaded model).")
