"""The async checkpointer: save policy, commit protocol, pruning after commit, errors, ranks, kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from latentbridge import files
from latentbridge.training.checkpoint import (AsyncCheckpointer, CheckpointWriteError, TrainState, config_fingerprint,
                                             find_latest, load_checkpoint, should_save)
from latentbridge.training.checkpoint import format as ck_format
from latentbridge.training.checkpoint import write as ck_write
from tests.factories import names_in, tiny_checkpointer, tiny_fingerprint, tiny_train_state

REPO = Path(__file__).resolve().parents[3]
FP = tiny_fingerprint()


def test_should_save_every_nth_step_never_at_zero():
    assert [s for s in range(0, 11) if should_save(s, 5)] == [5, 10]
    assert not should_save(3, 0)


def test_keeps_last_k(tmp_path):
    with tiny_checkpointer(tmp_path, keep_last=2) as saver:
        for step in (1, 2, 3, 4):
            saver.save(step, tiny_train_state(step))
    assert names_in(tmp_path / "ckpt") == ["step-000000003", "step-000000004"]
    assert find_latest(tmp_path / "ckpt").name == "step-000000004"


def listings_at_commit(monkeypatch) -> list[list[str]]:
    """The checkpoint folder's entries at each commit (publish), recorded as saves go."""
    seen: list[list[str]] = []
    real_publish = ck_write.publish_dir

    def spy(partial, final, **kw):
        seen.append(names_in(final.parent))
        real_publish(partial, final, **kw)

    monkeypatch.setattr(ck_write, "publish_dir", spy)
    return seen


def test_never_deletes_before_commit(tmp_path, monkeypatch):
    seen_at_commit = listings_at_commit(monkeypatch)
    saver = tiny_checkpointer(tmp_path, keep_last=1)
    saver.save(1, tiny_train_state(1))
    saver.save(2, tiny_train_state(2))
    saver.close()
    assert "step-000000001" in seen_at_commit[1]  # the old one still existed when the new one committed
    assert names_in(tmp_path / "ckpt") == ["step-000000002"]


def test_older_checkpoints_are_pruned_before_the_write_never_the_newest(tmp_path, monkeypatch):
    seen_at_commit = listings_at_commit(monkeypatch)
    with tiny_checkpointer(tmp_path, keep_last=3) as saver:
        for step in (1, 2, 3, 4):
            saver.save(step, tiny_train_state(step))
    # the 4th save wrote where step 1 was (its memory is reused at once), beside the two newest
    assert seen_at_commit[3] == ["step-000000002", "step-000000003", "step-000000004" + ck_format.PARTIAL_SUFFIX]
    assert names_in(tmp_path / "ckpt") == ["step-000000002", "step-000000003", "step-000000004"]


def test_failed_save_with_room_made_keeps_the_newest(tmp_path, monkeypatch):
    saver = tiny_checkpointer(tmp_path, keep_last=2)
    for step in (1, 2):
        saver.save(step, tiny_train_state(step))
    saver.wait()
    real_write_json = ck_write.write_json

    def broken(path, obj, **kw):
        if path.name == ck_format.MANIFEST_NAME:
            raise OSError(28, "No space left on device")
        return real_write_json(path, obj, **kw)

    monkeypatch.setattr(ck_write, "write_json", broken)
    saver.save(3, tiny_train_state(3))
    with pytest.raises(CheckpointWriteError, match=r"step-000000003.*No space left.*step-000000002 is intact"):
        saver.wait()
    assert names_in(tmp_path / "ckpt") == ["step-000000002", "step-000000003" + ck_format.PARTIAL_SUFFIX]
    load_checkpoint(tmp_path / "ckpt" / "step-000000002", FP)


def test_failed_save_keeps_previous_and_prunes_nothing(tmp_path, monkeypatch):
    saver = tiny_checkpointer(tmp_path, keep_last=1)
    saver.save(1, tiny_train_state(1))
    saver.wait()

    def broken(path, obj, **kw):
        if path.name == ck_format.MANIFEST_NAME:
            raise OSError(28, "No space left on device")
        return real_write_json(path, obj, **kw)

    real_write_json = ck_write.write_json
    monkeypatch.setattr(ck_write, "write_json", broken)
    saver.save(2, tiny_train_state(2))
    with pytest.raises(CheckpointWriteError, match=r"step-000000002.*No space left.*step-000000001 is intact"):
        saver.wait()
    assert find_latest(tmp_path / "ckpt").name == "step-000000001"
    load_checkpoint(tmp_path / "ckpt" / "step-000000001", FP)


def test_failed_publish_keeps_the_committed_checkpoint_of_the_same_step(tmp_path, monkeypatch):
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(1, tiny_train_state(1))
    real_rename = files.os.rename

    def rename(src, dst):
        if str(src).endswith(".partial"):
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)
    saver = tiny_checkpointer(tmp_path)
    saver.save(1, tiny_train_state(7))  # a second save of step 1 (a rerun) fails at the rename
    with pytest.raises(CheckpointWriteError, match="Input/output error"):
        saver.wait()
    monkeypatch.undo()
    loaded = load_checkpoint(tmp_path / "ckpt" / "step-000000001", FP)
    assert torch.equal(loaded.model["weight"], tiny_train_state(1).model["weight"])


def test_writer_crash_surfaces_on_next_save_and_close(tmp_path, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("writer exploded")

    saver = tiny_checkpointer(tmp_path)
    monkeypatch.setattr(ck_write, "write_safetensors", crash)
    saver.save(1, tiny_train_state(1))  # returns: the error happens in the background
    with pytest.raises(CheckpointWriteError, match="writer exploded"):
        saver.save(2, tiny_train_state(2))
    saver.save(3, tiny_train_state(3))
    with pytest.raises(CheckpointWriteError, match="step-000000003"):
        saver.close()
    saver.close()  # reported once, then clean


def test_sync_mode_raises_immediately(tmp_path, monkeypatch):
    monkeypatch.setattr(ck_write, "write_safetensors", lambda *a, **k: (_ for _ in ()).throw(OSError("disk gone")))
    saver = tiny_checkpointer(tmp_path, async_save=False)
    with pytest.raises(CheckpointWriteError, match="disk gone"):
        saver.save(1, tiny_train_state(1))


def test_rank1_writes_nothing(tmp_path):
    saver = tiny_checkpointer(tmp_path, is_main=False)
    saver.save(1, tiny_train_state(1))
    saver.save_model(tmp_path / "ckpt" / "best_model.pt", tiny_train_state(1).model, config={}, step=1, stage="x")
    saver.close()
    assert not (tmp_path / "ckpt").exists()


def test_save_copies_state_before_returning(tmp_path):
    model = nn.Linear(4, 3)
    expected = model.weight.detach().clone()
    saver = tiny_checkpointer(tmp_path)
    saver.save(1, TrainState(stage="s", model=model.state_dict()))
    with torch.no_grad():
        model.weight.add_(100.0)  # the loop goes on mutating while the writer runs
    saver.close()
    assert torch.equal(load_checkpoint(find_latest(tmp_path / "ckpt"), FP).model["weight"], expected)


def test_background_copy_holds_the_state_of_the_save_call_once_the_fence_passes(tmp_path):
    model = nn.Linear(64, 32)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(8, 64)).sum().backward()
    opt.step()
    expected = {k: v.detach().clone() for k, v in model.state_dict().items()}
    moment = opt.state[model.weight]["exp_avg"].clone()
    saver = tiny_checkpointer(tmp_path, background_copy=True)
    saver.save(1, TrainState(stage="s", model=model.state_dict(), optimizer=opt.state_dict()))
    model(torch.randn(8, 64)).sum().backward()  # the next step's forward and backward overlap the copy
    saver.wait_for_copy()
    opt.step()  # changes weights and moments in place, after the fence
    saver.close()
    loaded = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    assert all(torch.equal(loaded.model[k], v) for k, v in expected.items())
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], moment)
    assert not torch.equal(model.weight.detach(), expected["weight"])


def test_sync_save_writes_cpu_tensors_without_copying_them(tmp_path, monkeypatch):
    copies = []
    real = torch.Tensor.copy_
    monkeypatch.setattr(torch.Tensor, "copy_", lambda self, *a, **k: (copies.append(self.shape), real(self, *a, **k))[1])
    with tiny_checkpointer(tmp_path, async_save=False) as saver:
        saver.save(1, tiny_train_state(1))
    assert copies == []
    assert torch.equal(load_checkpoint(find_latest(tmp_path / "ckpt"), FP).model["weight"], tiny_train_state(1).model["weight"])


def test_async_save_equals_sync_save(tmp_path):
    state = tiny_train_state(7)
    for name, async_save in (("a", True), ("s", False)):
        with AsyncCheckpointer(tmp_path / name, fingerprint=FP, async_save=async_save) as saver:
            saver.save(7, state)
    manifests = [json.loads((tmp_path / d / "step-000000007" / "manifest.json").read_text()) for d in ("a", "s")]
    assert manifests[0]["files"] == manifests[1]["files"]


def test_unjsonable_state_is_refused_at_save_time(tmp_path):
    saver = tiny_checkpointer(tmp_path)
    with pytest.raises(TypeError, match="no pickle"):
        saver.save(1, TrainState(stage="s", model={}, loop={"fn": object()}))


def test_status_reports_the_last_committed_checkpoint(tmp_path):
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(3, tiny_train_state(3))
        saver.wait()
        status = saver.status()
    assert (status.writing_step, status.last_committed_step, status.error) == (None, 3, None)
    assert tiny_checkpointer(tmp_path).status().last_committed_path.name == "step-000000003"  # found on start


def test_fsync_called_on_directory(tmp_path, monkeypatch):
    synced = []
    real = files.fsync_dir
    monkeypatch.setattr(files, "fsync_dir", lambda p: (synced.append(Path(p).name), real(p)))
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(1, tiny_train_state(1))
    assert "step-000000001.partial" in synced and "ckpt" in synced
    assert (tmp_path / "ckpt" / "step-000000001").is_dir()


def test_every_file_is_fsynced_before_the_folder_is_published(tmp_path, monkeypatch):
    synced: list[str] = []
    published: list[list[str]] = []
    real_fsync, real_publish = files.fsync_file, ck_write.publish_dir
    monkeypatch.setattr(files, "fsync_file", lambda p: (synced.append(Path(p).name), real_fsync(p)))
    monkeypatch.setattr(ck_write, "publish_dir", lambda *a, **k: (published.append(sorted(synced)), real_publish(*a, **k)))
    with tiny_checkpointer(tmp_path) as saver:
        saver.save(1, tiny_train_state(1))
    assert published == [sorted(["model.safetensors", "state.safetensors", "state.json", "config.json", "manifest.json"])]


KILLED_SAVER = textwrap.dedent(
    """
    import sys, time, torch
    from latentbridge.training import checkpoint as ck
    from latentbridge.training.checkpoint import write
    saver = ck.AsyncCheckpointer(sys.argv[1], fingerprint=ck.config_fingerprint({}), keep_last=1)
    state = lambda: ck.TrainState(stage="s", model={"w": torch.randn(256, 256)}, loop={"i": 1})
    saver.save(1, state()); saver.wait()
    real = write.write_json
    def slow(path, obj, **kw):
        time.sleep(60)  # the process is killed here, mid-save: the tensor files are written, the JSON files not
        return real(path, obj, **kw)
    write.write_json = slow
    saver.save(2, state())
    print("saving", flush=True)
    time.sleep(60)
    """
)


def test_kill9_during_save_leaves_previous_loadable(tmp_path):
    d = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(d)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saving"
        deadline = time.time() + 30
        while not (d / "step-000000002.partial" / "model.safetensors").exists():
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (d / "step-000000002.partial").exists()
    assert find_latest(d).name == "step-000000001"
    assert load_checkpoint(find_latest(d), config_fingerprint({})).loop == {"i": 1}
    AsyncCheckpointer(d, fingerprint=config_fingerprint({})).close()  # a new run sweeps the debris
    assert names_in(d) == ["step-000000001"]
