"""One training per checkpoint_dir, tested with real processes: a second training on a folder in use exits 2 at
start naming the holder (host, pid, start time); a holder killed with SIGKILL frees it, and the next run takes
the lock over with a note; under torchrun every rank stops together instead of hanging."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentbridge.config_sources import write_config_file
from latentbridge.locks import RUN_LOCK, RunLock
from latentbridge.modes import ModeOptions
from latentbridge.modes.train import run as train
from latentbridge.recipe import checkpoint_fingerprint
from latentbridge.training.checkpoint import find_latest, load_checkpoint
from tests.factories import cache_folders, train_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
HOLDER = """
import sys, time
from pathlib import Path
from latentbridge.locks import RunLock
RunLock(Path(sys.argv[1]), "checkpoint_dir").acquire()
print("held", flush=True)
time.sleep(600)
"""


def main_py(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def hold(lock_path: Path) -> subprocess.Popen:
    """Another process holding the lock a training takes on its checkpoint_dir."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path)], env=ENV, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_training_on_a_checkpoint_dir_in_use_exits_2_naming_the_holder(tiny_root, tmp_path):
    c = train_config(tiny_root, tmp_path)
    write_config_file(c, str(tmp_path / "run.yaml"))
    holder = hold(Path(c.checkpoint_dir) / RUN_LOCK)
    try:
        second = main_py("--mode", "train", "--config", str(tmp_path / "run.yaml"), "--learning-rate", "0.5")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert f"checkpoint_dir {c.checkpoint_dir} is in use by another run (pid {holder.pid} on " \
               f"{socket.gethostname()}, since 20" in err
        assert "Traceback" not in err and cache_folders(Path(c.preprocess_cache_dir)) == []  # stopped at start
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    notes: list[str] = []
    RunLock(Path(c.checkpoint_dir) / RUN_LOCK, "checkpoint_dir").acquire(note=notes.append).release()
    assert len(notes) == 1 and f"left by pid {holder.pid} on {socket.gethostname()}" in notes[0]


def test_a_run_takes_over_the_lock_of_a_killed_run_and_releases_its_own(tiny_root, tmp_path, capsys):
    c = train_config(tiny_root, tmp_path)
    hold(Path(c.checkpoint_dir) / RUN_LOCK).kill()  # SIGKILL: the holder never released it
    time.sleep(0.2)
    assert train(c, ModeOptions(), stop_after_steps=1).exit_code == 130
    assert "taking over the lock on checkpoint_dir" in capsys.readouterr().out
    assert (Path(c.checkpoint_dir) / RUN_LOCK).read_text() == ""  # released when the run ended


def started(process: subprocess.Popen, lock: Path, timeout: float = 120) -> None:
    """Wait until `process` (a training) holds its lock."""
    deadline = time.monotonic() + timeout
    while not (lock.exists() and f'"pid": {process.pid}' in lock.read_text()):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_two_real_trainings_on_one_folder_the_second_and_a_resume_beside_it_exit_2(tiny_root, tmp_path):
    """The campaign's cases: two trainings with different learning rates, and `--resume auto` beside a running
    training. Slow: three training processes, ~40 s."""
    c = train_config(tiny_root, tmp_path, learning_rate=1e-3).replace(pretrain_adapter_epochs=50)  # minutes long
    write_config_file(c, str(tmp_path / "run.yaml"))
    lock = Path(c.checkpoint_dir) / RUN_LOCK
    first = subprocess.Popen([sys.executable, "main.py", "--mode", "train", "--config", str(tmp_path / "run.yaml")],
                             cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started(first, lock)
        others = [main_py("--mode", "train", "--config", str(tmp_path / "run.yaml"), *extra)
                  for extra in (("--learning-rate", "0.5"), ("--resume", "auto"))]
        for other in others:
            _, err = other.communicate(timeout=120)
            assert other.returncode == 2 and f"is in use by another run (pid {first.pid} on " in err, err
        assert first.poll() is None, "the first training ended before the others were tried"
    finally:
        first.send_signal(signal.SIGTERM)  # stops after its step, with a checkpoint
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    latest = find_latest(c.checkpoint_dir)
    assert load_checkpoint(latest, checkpoint_fingerprint(c)).config["learning_rate"] == 1e-3  # its own, untouched


@pytest.mark.slow
def test_under_torchrun_every_rank_stops_when_the_folder_is_in_use(tiny_root, tmp_path):
    """Rank 0 takes the lock for the run and tells the others: both exit, none hangs. Slow: torchrun, ~20 s."""
    c = train_config(tiny_root, tmp_path)
    write_config_file(c, str(tmp_path / "run.yaml"))
    holder = hold(Path(c.checkpoint_dir) / RUN_LOCK)
    try:
        run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "main.py", "--mode", "train", "--config", str(tmp_path / "run.yaml")],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=240)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode != 0
    assert (run.stdout + run.stderr).count(f"is in use by another run (pid {holder.pid} on ") == 2
