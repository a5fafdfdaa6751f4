"""Run locks: exclusive while held (two locks of one file conflict, even in one process), the holder named,
emptied on release, taken over from a holder that died, skipped with a note where files cannot be locked."""

from __future__ import annotations

import errno
import json
import os
import re
import socket

import pytest

from latentbridge import locks
from latentbridge.errors import UserError
from latentbridge.locks import RunLock, is_locked


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    path = tmp_path / "run" / "lock"
    with RunLock(path, "checkpoint_dir run"):
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        assert is_locked(path)
        expected = f"checkpoint_dir run is in use by another run (pid {os.getpid()} on {socket.gethostname()}, " \
                   f"since {holder['started']}"
        with pytest.raises(UserError, match=re.escape(expected)):
            RunLock(path, "checkpoint_dir run").acquire()
    assert path.read_text() == "" and not is_locked(path)
    RunLock(path, "checkpoint_dir run").acquire(note=pytest.fail).release()  # free again, and nothing to note


def test_a_lock_left_by_a_dead_holder_is_taken_over_with_a_note(tmp_path):
    path = tmp_path / "lock"
    path.write_text(json.dumps({"host": "gone", "pid": 4242, "started": "yesterday", "command": "main.py"}))
    notes: list[str] = []
    lock = RunLock(path, "checkpoint_dir x").acquire(note=notes.append)
    assert len(notes) == 1 and "taking over the lock on checkpoint_dir x left by pid 4242 on gone" in notes[0]
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_waits_for_a_lock_to_be_released(tmp_path, monkeypatch):
    path = tmp_path / "lock"
    first = RunLock(path, "x").acquire()
    real_sleep = locks.time.sleep
    monkeypatch.setattr(locks.time, "sleep", lambda s: (first.release(), real_sleep(s)))  # freed while waiting
    RunLock(path, "x").acquire(wait_s=5).release()


def test_file_systems_without_locks_run_unlocked_with_a_note(tmp_path, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    notes: list[str] = []
    RunLock(tmp_path / "lock", "checkpoint_dir x").acquire(note=notes.append).release()
    assert len(notes) == 1 and "cannot lock files" in notes[0]


def test_a_folder_that_cannot_be_created_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for folder in (tmp_path / "file", tmp_path / "file" / "under"):
        with pytest.raises(UserError, match=re.escape(f"checkpoint_dir {folder} cannot be used: {tmp_path / 'file'} "
                                                      "is a file, not a folder")):
            RunLock(folder / "lock", f"checkpoint_dir {folder}").acquire()


def test_a_symlinked_lock_file_is_refused_and_its_target_left_intact(tmp_path):
    """A link planted at the lock's path once made a run truncate the file it pointed to (issue 20)."""
    precious = tmp_path / "precious.txt"
    precious.write_text("years of notes")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / locks.RUN_LOCK).symlink_to(precious)
    with pytest.raises(UserError, match=r"checkpoint_dir run cannot be used: its lock .* is a symbolic link"):
        RunLock(tmp_path / "run" / locks.RUN_LOCK, "checkpoint_dir run").acquire()
    assert precious.read_text() == "years of notes"
    assert not is_locked(tmp_path / "run" / locks.RUN_LOCK)


def test_a_lock_path_that_is_not_a_plain_file_is_refused(tmp_path):
    fifo = tmp_path / "lock"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a plain file"):
        RunLock(fifo, "checkpoint_dir x").acquire()


def test_an_existing_lock_file_is_not_truncated_before_it_is_locked(tmp_path):
    """O_CREAT without O_TRUNC: a holder's record survives a second process's failed attempt."""
    path = tmp_path / "lock"
    with RunLock(path, "checkpoint_dir x"):
        record = path.read_text()
        with pytest.raises(UserError, match="in use"):
            RunLock(path, "checkpoint_dir x").acquire()
        assert path.read_text() == record
