"""The checkpointer: commit protocol, pruning, refusal of bad checkpoints, exact resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latentbridge.errors import UserError
from latentbridge.training import checkpoint as ck
from latentbridge.training.checkpoint import (
    AsyncCheckpointer,
    CheckpointWriteError,
    TrainState,
    capture_rng_state,
    config_fingerprint,
    find_latest,
    load_checkpoint,
    load_model_file,
    restore_rng_state,
    should_save,
    write_model_file,
)
from latentbridge.training.schedule import build_scheduler

REPO = Path(__file__).resolve().parents[2]
FP = config_fingerprint({"latent_dim": 8, "prefix_len": 2})


def tiny_state(step: int = 0, stage: str = "pretrain_middle") -> TrainState:
    torch.manual_seed(step)
    model = nn.Linear(4, 3)
    return TrainState(stage=stage, model=model.state_dict(), loop={"epoch": 0, "batch": step}, config={"latent_dim": 8})


def checkpointer(tmp_path: Path, **kw) -> AsyncCheckpointer:
    kw.setdefault("fingerprint", FP)
    return AsyncCheckpointer(tmp_path / "ckpt", **kw)


def steps_on_disk(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ----------------------------------------------------------------------------- policy


def test_should_save_every_nth_step_never_at_zero():
    assert [s for s in range(0, 11) if should_save(s, 5)] == [5, 10]
    assert not should_save(3, 0)


def test_keeps_last_k(tmp_path):
    with checkpointer(tmp_path, keep_last=2) as saver:
        for step in (1, 2, 3, 4):
            saver.save(step, tiny_state(step))
    assert steps_on_disk(tmp_path / "ckpt") == ["step-000000003", "step-000000004"]
    assert find_latest(tmp_path / "ckpt").name == "step-000000004"


def test_never_deletes_before_commit(tmp_path, monkeypatch):
    seen_at_commit = []
    real_replace = ck._replace_dir

    def spy(partial, final):
        seen_at_commit.append(steps_on_disk(final.parent))
        real_replace(partial, final)

    monkeypatch.setattr(ck, "_replace_dir", spy)
    saver = checkpointer(tmp_path, keep_last=1)
    saver.save(1, tiny_state(1))
    saver.save(2, tiny_state(2))
    saver.close()
    assert "step-000000001" in seen_at_commit[1]  # the old one still existed when the new one committed
    assert steps_on_disk(tmp_path / "ckpt") == ["step-000000002"]


def test_failed_save_keeps_previous_and_prunes_nothing(tmp_path, monkeypatch):
    saver = checkpointer(tmp_path, keep_last=1)
    saver.save(1, tiny_state(1))
    saver.wait()

    def broken(path, obj):
        if path.name == ck.MANIFEST_NAME:
            raise OSError(28, "No space left on device")
        return real_write_json(path, obj)

    real_write_json = ck._write_json
    monkeypatch.setattr(ck, "_write_json", broken)
    saver.save(2, tiny_state(2))
    with pytest.raises(CheckpointWriteError, match=r"step-000000002.*No space left.*step-000000001 is intact"):
        saver.wait()
    assert find_latest(tmp_path / "ckpt").name == "step-000000001"
    load_checkpoint(tmp_path / "ckpt" / "step-000000001", FP)


def test_writer_crash_surfaces_on_next_save_and_close(tmp_path, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("writer exploded")

    saver = checkpointer(tmp_path)
    monkeypatch.setattr(ck, "save_file", crash)
    saver.save(1, tiny_state(1))  # returns: the error happens in the background
    with pytest.raises(CheckpointWriteError, match="writer exploded"):
        saver.save(2, tiny_state(2))
    saver.save(3, tiny_state(3))
    with pytest.raises(CheckpointWriteError, match="step-000000003"):
        saver.close()
    saver.close()  # reported once, then clean


def test_sync_mode_raises_immediately(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("disk gone")))
    saver = checkpointer(tmp_path, async_save=False)
    with pytest.raises(CheckpointWriteError, match="disk gone"):
        saver.save(1, tiny_state(1))


def test_rank1_writes_nothing(tmp_path):
    saver = checkpointer(tmp_path, is_main=False)
    saver.save(1, tiny_state(1))
    saver.save_model(tmp_path / "ckpt" / "best_model.pt", tiny_state(1).model, config={}, step=1, stage="x")
    saver.close()
    assert not (tmp_path / "ckpt").exists()


def test_save_copies_state_before_returning(tmp_path):
    model = nn.Linear(4, 3)
    expected = model.weight.detach().clone()
    saver = checkpointer(tmp_path)
    saver.save(1, TrainState(stage="s", model=model.state_dict()))
    with torch.no_grad():
        model.weight.add_(100.0)  # the loop goes on mutating while the writer runs
    saver.close()
    assert torch.equal(load_checkpoint(find_latest(tmp_path / "ckpt"), FP).model["weight"], expected)


def test_async_save_equals_sync_save(tmp_path):
    state = tiny_state(7)
    for name, async_save in (("a", True), ("s", False)):
        with AsyncCheckpointer(tmp_path / name, fingerprint=FP, async_save=async_save) as saver:
            saver.save(7, state)
    manifests = [json.loads((tmp_path / d / "step-000000007" / "manifest.json").read_text()) for d in ("a", "s")]
    assert manifests[0]["files"] == manifests[1]["files"]


def test_unjsonable_state_is_refused_at_save_time(tmp_path):
    saver = checkpointer(tmp_path)
    with pytest.raises(TypeError, match="no pickle"):
        saver.save(1, TrainState(stage="s", model={}, loop={"fn": object()}))


def test_find_latest_ignores_partial_and_unmanifested(tmp_path):
    d = tmp_path / "ckpt"
    with checkpointer(tmp_path) as saver:
        saver.save(1, tiny_state(1))
    (d / "step-000000009.partial").mkdir()
    (d / "step-000000008").mkdir()  # no manifest: never picked
    assert find_latest(d).name == "step-000000001"
    assert find_latest(tmp_path / "missing") is None


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def saved(tmp_path) -> Path:
    with checkpointer(tmp_path) as saver:
        saver.save(5, tiny_state(5))
    return tmp_path / "ckpt" / "step-000000005"


def test_torn_missing_manifest_is_refused(saved):
    (saved / "manifest.json").unlink()
    with pytest.raises(UserError, match=rf"{saved}.*no manifest.json.*torn"):
        load_checkpoint(saved, FP)


def test_torn_truncated_file_is_refused(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(UserError, match=r"torn: model.safetensors has \d+ bytes, the manifest says \d+"):
        load_checkpoint(saved, FP)


def test_hash_mismatch_is_refused(saved):
    data = bytearray((saved / "state.json").read_bytes())
    data[-3] ^= 1
    (saved / "state.json").write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt: the sha256 of state.json"):
        load_checkpoint(saved, FP)


def test_partial_folder_is_refused(tmp_path):
    (tmp_path / "step-000000001.partial").mkdir()
    with pytest.raises(UserError, match="unfinished save"):
        load_checkpoint(tmp_path / "step-000000001.partial", FP)


def test_foreign_checkpoint_is_refused(tmp_path, saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    (saved / "manifest.json").write_text(json.dumps({**manifest, "format": "someone-else"}))
    with pytest.raises(UserError, match="not a latentbridge checkpoint"):
        load_checkpoint(saved, FP)
    pickled = tmp_path / "old.pt"
    torch.save({"model": 1}, pickled)
    with pytest.raises(UserError, match="is a file.*never loaded"):
        load_checkpoint(pickled, FP)
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_model_file(pickled)


def test_incompatible_config_is_refused_naming_the_field(saved):
    other = config_fingerprint({"latent_dim": 16, "prefix_len": 2})
    with pytest.raises(UserError, match=r"incompatible model configuration \(latent_dim: checkpoint 8, now 16\)"):
        load_checkpoint(saved, other)
    load_checkpoint(saved, None)  # no expectation: no check


# ----------------------------------------------------------------------------- exact resume


def _setup(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=8)
    return model, opt, sched


def _train(model, opt, sched, steps: int):
    for _ in range(steps):
        x = torch.randn(5, 6) + np.random.rand() + random.random()  # every RNG feeds the step
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_resume_round_trip_is_exact(tmp_path):
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    ref = _setup(1)
    _train(*ref, 8)

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    model, opt, sched = _setup(1)
    _train(model, opt, sched, 4)
    with checkpointer(tmp_path) as saver:
        saver.save(4, TrainState(stage="s", model=model.state_dict(), optimizer=opt.state_dict(),
                                 scheduler=sched.state_dict(), loop={"step": 4}, rng=capture_rng_state()))
    _train(model, opt, sched, 3)  # diverge: the resumed run must not see this

    loaded = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    model2, opt2, sched2 = _setup(99)
    model2.load_state_dict(loaded.model)
    opt2.load_state_dict(loaded.optimizer)
    sched2.load_state_dict(loaded.scheduler)
    restore_rng_state(loaded.rng)
    assert loaded.loop == {"step": 4}
    _train(model2, opt2, sched2, 4)

    for a, b in zip(ref[0].state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert ref[2].get_last_lr() == sched2.get_last_lr()


def test_optimizer_state_restores_exactly(tmp_path):
    model, opt, sched = _setup(3)
    _train(model, opt, sched, 2)
    with checkpointer(tmp_path) as saver:
        saver.save(2, TrainState(stage="s", model=model.state_dict(), optimizer=opt.state_dict(),
                                 loop={"best": float("inf")}))
    loaded = load_checkpoint(find_latest(tmp_path / "ckpt"), FP)
    a, b = opt.state_dict(), loaded.optimizer
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, value in a["state"][k].items():
            assert torch.equal(value, b["state"][k][name])
    assert loaded.loop == {"best": float("inf")}


# ----------------------------------------------------------------------------- model files


def test_model_file_round_trip_with_tied_weights(tmp_path):
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # tied, like Gemma's lm_head
    model = nn.ModuleDict({"emb": emb, "head": head})
    path = write_model_file(tmp_path / "best_model.pt", model.state_dict(), config={"latent_dim": 8},
                            fingerprint=FP, step=12, stage="finetune_adapter")
    assert not (tmp_path / "best_model.pt.partial").exists()
    loaded = load_model_file(path, FP)
    assert (loaded.step, loaded.stage, loaded.config) == (12, "finetune_adapter", {"latent_dim": 8})
    fresh = nn.ModuleDict({"emb": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
    fresh.load_state_dict(loaded.model)
    assert torch.equal(fresh["head"].weight, emb.weight)


def test_async_save_model_and_refusals(tmp_path):
    saver = checkpointer(tmp_path)
    path = tmp_path / "ckpt" / "best_model.pt"
    saver.save_model(path, tiny_state(1).model, config={"a": 1}, step=1, stage="s")
    saver.close()
    assert load_model_file(path, FP).config == {"a": 1}
    with pytest.raises(UserError, match="incompatible"):
        load_model_file(path, config_fingerprint({"latent_dim": 9}))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        load_model_file(path, FP)
    path.write_bytes(bytes(data[:-5]))
    with pytest.raises(UserError, match="torn"):
        load_model_file(path, FP)


def test_step_checkpoint_folder_loads_as_model_file(saved):
    assert load_model_file(saved, FP).step == 5


# ----------------------------------------------------------------------------- kill -9


KILLED_SAVER = textwrap.dedent(
    """
    import sys, time, torch
    from latentbridge.training import checkpoint as ck
    saver = ck.AsyncCheckpointer(sys.argv[1], fingerprint=ck.config_fingerprint({}), keep_last=1)
    state = lambda: ck.TrainState(stage="s", model={"w": torch.randn(256, 256)}, loop={"i": 1})
    saver.save(1, state()); saver.wait()
    real = ck._fsync_file
    def slow(path):
        out = real(path)
        time.sleep(60)  # the process is killed here, mid-save
        return out
    ck._fsync_file = slow
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
    assert steps_on_disk(d) == ["step-000000001"]


def test_rng_capture_restore_round_trip():
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_fsync_called_on_directory(tmp_path, monkeypatch):
    synced = []
    real = ck._fsync_dir
    monkeypatch.setattr(ck, "_fsync_dir", lambda p: (synced.append(Path(p).name), real(p)))
    with checkpointer(tmp_path) as saver:
        saver.save(1, tiny_state(1))
    assert "step-000000001.partial" in synced and "ckpt" in synced
    assert os.path.isdir(tmp_path / "ckpt" / "step-000000001")
