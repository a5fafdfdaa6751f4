"""Run locks: one training per checkpoint_dir, one builder per cache folder.

    lock = RunLock(folder / RUN_LOCK, f"checkpoint_dir {folder}").acquire(note=print)   # UserError if in use
    ...
    lock.release()                                                             # or `with RunLock(...)`

A lock is a file naming its holder (host, pid, start time, command) and locked with flock(2) while held.
The kernel drops an flock when its process ends, however it ends (kill -9, OOM), so a lock never goes
stale: a lock file that still names a holder although its flock is free was left by a run that died, and
the next run takes it over with a note. The file is emptied on release, never deleted (deleting it would
let a second process lock a file that is no longer the one at that path).

Hand-written rather than `filelock` (whose Unix lock is the same flock): the error must name the holder,
which filelock neither records nor reports, and telling "taken over from a dead run" apart from "free"
needs the holder's record in the same file. An O_EXCL lock file with a pid check was the alternative; it
needs a stale-lock rule (pid dead? pid reused by another program?) and a race-free takeover, which flock
makes unnecessary. On file systems without flock (some network mounts) the run goes on unlocked, with a
note.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from latentbridge.errors import UserError
from latentbridge.files import publish_dir

RUN_LOCK = ".latentbridge.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_POLL_S = 0.05


def _holder_record() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300]}


def describe_holder(text: str) -> str:
    """A lock file's content as a phrase: 'pid 12 on host, since 2026-...: python main.py ...'."""
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['started']}: {holder['command']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not written its name yet" if not text.strip() else f"an unknown holder ({text[:80]!r})"


class RunLock:
    """An exclusive lock on `path` (a file; its folder is created). `what` names the locked thing in messages
    ("checkpoint_dir runs/x")."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self._fd: Optional[int] = None

    def acquire(self, wait_s: float = 0.0, note: Callable[[str], None] = print) -> "RunLock":
        """Take the lock, trying for `wait_s` seconds; UserError naming the holder if another process keeps it."""
        self._fd = self._open()
        deadline = time.monotonic() + wait_s
        while not self._try_lock(note):
            if time.monotonic() >= deadline:
                self._refuse()
            time.sleep(_POLL_S)
        return self

    def release(self) -> None:
        """Empty the lock file and unlock it (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        """The lock file, opened without following a symlink and without truncating it (O_NOFOLLOW, no O_TRUNC):
        a link planted at the lock's path must not make the run empty the file it points to."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UserError(f"{self.what} cannot be used: its lock {self.path} is a symbolic link. A run writes "
                                "its lock file only where it is a plain file; remove the link.") from None
            raise self._unusable(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{self.what} cannot be used: its lock {self.path} is not a plain file. Remove it.")
        return fd

    def _unusable(self, exc: OSError) -> UserError:
        """The error for a lock whose folder cannot be made or written."""
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            return UserError(f"{self.what} cannot be used: {self._file_in_the_way(exc)} is a file, not a folder. "
                             "Point it at a folder.")
        return UserError(f"{self.what} cannot be used: {exc.strerror} ({exc.filename}). Point it at a folder "
                         "you can write to.")

    def _file_in_the_way(self, exc: OSError) -> Path:
        """The file among the lock's ancestors that stops its folder from being created."""
        return next((p for p in self.path.parents if p.is_file()), Path(exc.filename or self.path.parent))

    def _try_lock(self, note: Callable[[str], None]) -> bool:
        """True once the lock is ours (or cannot be had on this file system: then noted), False while held."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
            note(f"Note: the file system of {self.path.parent} cannot lock files; {self.what} is not protected "
                 "against a second run using it.")
            return True
        self._record(note)
        return True

    def _refuse(self) -> None:
        holder = describe_holder(self._read())
        os.close(self._fd)
        self._fd = None
        raise UserError(f"{self.what} is in use by another run ({holder}). Wait for it to finish, or use another "
                        f"folder. (The lock is {self.path}; it frees itself when that process ends.)")

    def _record(self, note: Callable[[str], None]) -> None:
        previous = self._read()
        if previous.strip():
            note(f"Note: taking over the lock on {self.what} left by {describe_holder(previous)}; that run ended "
                 "without releasing it (killed?).")
        data = json.dumps(_holder_record()).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _read(self) -> str:
        return os.pread(self._fd, 4096, 0).decode("utf-8", errors="replace")


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock at `path` now (False when there is no such lock file)."""
    if not Path(path).is_file() or Path(path).is_symlink():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return False
        raise
    finally:
        os.close(fd)  # drops the flock if this probe took it


def build_folder_once(folder: Path, is_built: Callable[[Path], bool], build: Callable[[Path], None], what: str,
                      wait_s: float) -> Path:
    """`folder`, built by `build(tmp)` into a temporary folder beside it and published by rename, unless
    `is_built(folder)` already. Builders take turns under a lock (a second one waits up to `wait_s`, then
    reuses what the first published), so no reader ever sees a half-built folder."""
    folder = Path(folder)
    if is_built(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder.parent / f".{folder.name}.lock", what).acquire(wait_s=wait_s)
    try:
        if not is_built(folder):  # else built by the process we waited for
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
            try:
                build(tmp)
                publish_dir(tmp, folder, folder.with_name(f".{folder.name}.old-{os.getpid()}"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.release()
    return folder
