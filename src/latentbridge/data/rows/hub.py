"""Hub datasets, through `datasets` (from its local cache when the hub is unreachable)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import huggingface_hub.constants as hub_constants

from latentbridge.data.rows.local import LOCAL_EXTENSIONS
from latentbridge.data.rows.row_source import RowSource
from latentbridge.errors import UserError

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
LOCAL_HINT = "run with `--preset tiny` (bundled offline corpus) or point the field at a local file or folder"


def _looks_like_path(location: str) -> bool:
    return (location.startswith((".", "/", "~")) or Path(location).suffix.lower() in LOCAL_EXTENSIONS
            or location.count("/") > 1 or os.sep != "/" and os.sep in location)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or \
            os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0].split(":")[0]
    result: list[bool] = []

    def probe() -> None:  # in a thread: name resolution ignores the socket timeout
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Make `datasets` use only its local cache (no network retries that hang)."""
    import datasets.config  # datasets takes seconds to import; the recipe imports this module

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def open_hub_dataset(location: str, field_name: str, hf_cache_dir: Optional[str] = None,
                     subset: Optional[str] = None):
    """A `datasets.DatasetDict` for a hub name (from the local cache when offline); UserError when it cannot be had."""
    import datasets  # takes seconds to import; the recipe imports this module

    datasets.disable_progress_bars()
    if _looks_like_path(location) or not HUB_NAME.match(location):
        raise UserError(f"{field_name}: local path {location!r} does not exist "
                        f"(resolved to {Path(location).expanduser().resolve()}).")
    online = _hub_reachable()
    try:
        with (contextlib.nullcontext() if online else _offline()):
            return datasets.load_dataset(location, subset, cache_dir=hf_cache_dir)
    except Exception as e:
        why = "the hub is unreachable and it is not in the local cache" if not online else \
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"{field_name}: cannot load dataset {location!r} ({why}). To work offline, "
                        f"{LOCAL_HINT}.") from e


class HubRows(RowSource):
    """A split of a hub dataset (arrow, read in batches)."""

    unit = "row"

    def __init__(self, ds: Any, name: str):
        self.ds, self.name = ds, name

    def count(self) -> int:
        return len(self.ds)

    def columns(self) -> list[str]:
        return list(self.ds.column_names)

    def _records(self) -> Iterator[tuple[str, int, Any]]:
        line = 0
        for batch in self.ds.iter(batch_size=1024):
            names = list(batch)
            for values in zip(*batch.values()):
                line += 1
                yield self.name, line, dict(zip(names, values))
