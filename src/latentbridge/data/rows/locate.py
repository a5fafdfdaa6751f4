"""From a location (a local file or folder, or a hub name) and a split name to the split's rows: the split
names of a folder come from its file names, and `validation` also answers to valid/val/dev."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from latentbridge.data.rows.hub import HubRows, open_hub_dataset
from latentbridge.data.rows.local import LOCAL_EXTENSIONS, LocalRows
from latentbridge.data.rows.row_source import RowSource
from latentbridge.errors import UserError

SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "test": ("test",), "train": ("train",)}


def local_files(path: Path, field_name: str) -> tuple[str, dict[str, list[str]]]:
    """(builder, {split: [files]}) for a local file or folder; split names from file names in a folder."""
    if path.is_file():
        builder = LOCAL_EXTENSIONS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"{field_name}: {path} has an unsupported extension {path.suffix!r}; "
                            f"expected one of {', '.join(sorted(LOCAL_EXTENSIONS))}.")
        return builder, {"train": [str(path)]}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise UserError(f"{field_name}: folder {path} holds no data files "
                        f"({', '.join(sorted(LOCAL_EXTENSIONS))}).")
    builders = {LOCAL_EXTENSIONS[p.suffix.lower()] for p in files}
    if len(builders) > 1:
        raise UserError(f"{field_name}: folder {path} mixes file types {sorted(builders)}; keep one type per folder.")
    splits: dict[str, list[str]] = {}
    for p in files:  # train.jsonl, validation-00000-of-00001.parquet, ...; other names: all train
        stem = p.stem.lower().split("-")[0].split(".")[0]
        split = next((s for s, aliases in SPLIT_ALIASES.items() if stem in aliases), None)
        splits.setdefault(split or "", []).append(str(p))
    if "" in splits:
        if len(splits) > 1:
            names = ", ".join(Path(f).name for f in splits[""][:5])
            raise UserError(f"{field_name}: folder {path} mixes split files (train/validation/test) with "
                            f"files named after no split ({names}); rename them or point at one file.")
        splits = {"train": splits.pop("")}
    return builders.pop(), splits


def pick_split(available: Any, wanted: str, field_name: str, location: str) -> str:
    """The name in `available` (split names) that `wanted` means (aliases: validation = valid/val/dev)."""
    if wanted in available:
        return wanted
    for aliases in SPLIT_ALIASES.values():
        if wanted in aliases:
            for alias in aliases:
                if alias in available:
                    return alias
    raise UserError(f"{field_name}: {location!r} has no split {wanted!r}; it has {sorted(available)}. "
                    f"Set the split flag (--train-split/--validation-split/--test-split) to one of those.")


def split_names(location: str, field_name: str, hf_cache_dir: Optional[str] = None,
                subset: Optional[str] = None) -> list[str]:
    """The split names of a dataset (local: from its file names)."""
    path = Path(location).expanduser()
    if path.exists():
        return list(local_files(path, field_name)[1])
    return list(open_hub_dataset(location, field_name, hf_cache_dir, subset))


def split_rows(location: str, field_name: str, split: str, hf_cache_dir: Optional[str] = None,
               subset: Optional[str] = None) -> RowSource:
    """The rows of one split of a hub name or local file/folder; UserError naming `field_name` when it cannot be had."""
    path = Path(location).expanduser()
    if path.exists():
        builder, files = local_files(path, field_name)
        return LocalRows(builder, files[pick_split(files, split, field_name, location)], field_name)
    dsd = open_hub_dataset(location, field_name, hf_cache_dir, subset)
    name = pick_split(dsd, split, field_name, location)
    return HubRows(dsd[name], f"{location} ({name})")
