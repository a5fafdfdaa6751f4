"""A cache built in a temporary folder and published by rename, under a build lock; the sweep of what killed
builds left behind."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Mapping, Optional

from latentbridge.data.cache.manifest import MANIFEST
from latentbridge.data.cache.writer import SplitWriter
from latentbridge.files import FILE_HASH, file_entry, fsync_file, header_digest, publish_dir
from latentbridge.locks import RunLock, is_locked

class CacheBuild:
    """A cache being built in a temporary folder; `commit()` writes the manifest and renames it into place.

    with CacheBuild(final_dir, manifest_base) as build:
        w = build.split_writer("dialogue", "train"); w.write(line, source); ...
        build.close_split(w, skipped={...})
        build.commit()
    Leaving the block without commit() (an error) removes the temporary folder.
    """

    def __init__(self, final_dir: Path, manifest: Mapping[str, Any], write_offsets: bool = True):
        self.final_dir = Path(final_dir)
        self.lock = build_lock(self.final_dir).acquire(wait_s=_SWEEP_WAIT_S)  # held until published or given up
        clean_stale_builds(self.final_dir.parent, holding=self.final_dir.name)
        self.tmp = self.final_dir.parent / f".tmp-{self.final_dir.name}-{_HOST}-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        self.manifest = dict(manifest)
        self.manifest["splits"] = {}
        self.write_offsets = write_offsets
        self.committed = False

    def __enter__(self) -> "CacheBuild":
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.lock.release()

    def split_writer(self, collection: str, split: str) -> SplitWriter:
        return SplitWriter(self.tmp, collection, split, self.write_offsets, self.manifest["source_names"])

    def close_split(self, writer: SplitWriter, skipped: Mapping[str, int], **report: Any) -> None:
        """Record the split in the manifest: its files, what was skipped, records per source, and `report`
        (what reading and encoding it found: where rows were skipped, truncation, mix weights)."""
        entry = writer.close(self.manifest["source_names"])
        entry["skipped"] = dict(skipped)
        entry["sources"] = writer.source_counts(self.manifest["source_names"])
        entry.update(report)
        self.manifest["splits"][writer.rel] = entry

    def record_extra_files(self) -> None:
        """Files added at the top of the folder (besides the manifest) are recorded for the size check."""
        self.manifest["extra_files"] = {p.name: file_entry(p)
                                        for p in sorted(self.tmp.iterdir()) if p.is_file() and p.name != MANIFEST}

    def commit(self, replace: bool = False) -> Path:
        """Write the manifest, then rename into place. An existing complete cache there is kept (another
        builder won the race) unless `replace` (a rebuild on purpose, or of a damaged cache)."""
        self.manifest["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.manifest[FILE_HASH] = header_digest(self.manifest)  # what a reader trusts in it is covered too
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(self.manifest, f, indent=1, sort_keys=True)
        fsync_file(self.tmp / MANIFEST)
        if not replace and (self.final_dir / MANIFEST).exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:  # a trash folder left by a crash is swept by clean_stale_builds
            trash = self.final_dir.parent / f".trash-{self.final_dir.name}-{_HOST}-{os.getpid()}"
            publish_dir(self.tmp, self.final_dir, aside=trash)
        self.committed = True
        return self.final_dir


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


_SWEEP_WAIT_S = 5.0  # a start sweeping leftovers holds a build lock for milliseconds: a builder waits that out


def build_lock(final_dir: Path) -> RunLock:
    """The lock a builder of the cache folder `final_dir` holds until it has published it."""
    return RunLock(final_dir.parent / f".lock-{final_dir.name}", f"the cache {final_dir} (preprocess_cache_dir)")


def _leftover_of(entry: Path) -> Optional[str]:
    """The cache folder name a `.tmp-<name>-<host>-<pid>` / `.trash-...` folder was a build of, else None."""
    for prefix in (".tmp-", ".trash-"):
        if entry.name.startswith(prefix) and entry.is_dir():
            parts = entry.name[len(prefix):].rsplit("-", 2)
            return parts[0] if len(parts) == 3 else None
    return None


def clean_stale_builds(root: Path, holding: Optional[str] = None) -> None:
    """Remove what builds left behind (temporary and trash folders) unless their cache is being built now;
    `holding` names the cache whose build lock the caller holds (its leftovers are a dead build's too).

    A builder holds its cache's lock from start to publish, and the kernel frees the lock when the
    builder dies (even by SIGKILL), so a leftover whose lock is free belongs to no live build."""
    if not root.exists():
        return
    for entry in sorted(root.iterdir()):
        name = _leftover_of(entry)
        if name is not None and (name == holding or not is_locked(build_lock(root / name).path)):
            shutil.rmtree(entry, ignore_errors=True)
