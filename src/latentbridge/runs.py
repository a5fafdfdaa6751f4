"""Run folders: every fresh training that is not given a folder of its own gets one under a root, as Lightning's
`version_N` folders do, so no run ever lands on another's checkpoints.

    <root>/version_0/      one run: step checkpoints, best models, the hand-off model, metrics.jsonl, summary.json
    <root>/version_1/      the next run
    <root>/latest          a small text file naming the newest run folder ("version_1")

`new_run_folder` claims the next number with mkdir (which fails when another process took it first, so two runs
started at once get two folders) and then points `latest` at it; `latest_run` follows the pointer (or, when it
is missing or damaged, takes the highest number). A text file rather than a symlink: it reads the same on every
file system, and a planted link cannot redirect a run (a pointer naming anything but a run folder of this root is
ignored). Which root a Config's run uses is decided by the modes (latentbridge.modes.run_root).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Optional

RUN_PREFIX = "version_"
LATEST = "latest"
_RUN_NAME = re.compile(rf"{RUN_PREFIX}(\d+)")


def run_number(folder: Path) -> Optional[int]:
    """N of a `version_N` folder name, None for any other name."""
    match = _RUN_NAME.fullmatch(folder.name)
    return int(match.group(1)) if match else None


def run_folders(root: str | Path) -> list[Path]:
    """The run folders of `root`, oldest first (real folders only: a symlink named like a run is not one)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if run_number(p) is not None and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: run_number(p))


def is_run_root(folder: str | Path) -> bool:
    """Whether `folder` holds run folders (it is a root, not one run's folder)."""
    return bool(run_folders(folder)) or (Path(folder) / LATEST).is_file()


def latest_run(root: str | Path) -> Optional[Path]:
    """The run folder `root/latest` names, else the highest-numbered one; None when the root has no run."""
    root = Path(root)
    folders = run_folders(root)
    pointer = root / LATEST
    if pointer.is_file() and not pointer.is_symlink():
        named = pointer.read_text(encoding="utf-8", errors="replace").strip()
        chosen = [p for p in folders if p.name == named]
        if chosen:
            return chosen[0]
    return folders[-1] if folders else None


def new_run_folder(root: str | Path) -> Path:
    """Create the next `version_N` folder of `root`, point `latest` at it, return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = [run_number(p) for p in run_folders(root)]
    number = max(taken, default=-1) + 1
    while True:
        folder = root / f"{RUN_PREFIX}{number}"
        try:
            folder.mkdir()
            break
        except FileExistsError:  # another run took this number (or a file has the name): the next one
            number += 1
    point_latest(root, folder)
    return folder


def point_latest(root: Path, folder: Path) -> None:
    """Atomically make `root/latest` name `folder` (a run folder of `root`), through a temporary file of a unique
    name (runs starting at once each write their own, and the last rename wins)."""
    pointer = root / LATEST
    if pointer.is_dir():
        return  # not ours to replace: latest_run then falls back to the highest number
    with tempfile.NamedTemporaryFile("w", dir=root, prefix=f".{LATEST}.", suffix=".tmp", delete=False) as f:
        f.write(folder.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, pointer)
