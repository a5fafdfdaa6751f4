"""Writing: the copy off the live state (tied weights once, buffers reused), model files, publish and prune."""

from __future__ import annotations

import torch
from torch import nn

from latentbridge.training.checkpoint import committed_checkpoints, load_model_file, write_model_file
from latentbridge.training.checkpoint import write as ck_write
from latentbridge.training.checkpoint.write import (CopyBuffers, copy_tensors, discard_retired, prune, snapshot,
                                                    write_step_checkpoint)
from tests.factories import names_in, tiny_fingerprint, tiny_train_state

FP = tiny_fingerprint()


def _tied() -> nn.ModuleDict:
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # tied, like Gemma's lm_head
    return nn.ModuleDict({"emb": emb, "head": head})


def test_tied_weights_are_copied_once():
    tensors, aliases = copy_tensors(_tied().state_dict(), "", CopyBuffers(reuse=False))
    assert list(tensors) == ["emb.weight"] and aliases == {"head.weight": "emb.weight"}


def test_copy_buffers_are_reused_only_when_asked():
    t = torch.ones(3)
    reused = CopyBuffers(reuse=True)
    assert reused.copy("k", t) is reused.copy("k", t * 2)
    fresh = CopyBuffers(reuse=False)
    assert fresh.copy("k", t) is not fresh.copy("k", t)


def test_model_file_round_trip_with_tied_weights(tmp_path):
    model = _tied()
    path = write_model_file(tmp_path / "best_model.pt", model.state_dict(), config={"latent_dim": 8},
                            fingerprint=FP, step=12, stage="finetune_adapter")
    assert not (tmp_path / "best_model.pt.partial").exists()
    loaded = load_model_file(path, FP)
    assert (loaded.step, loaded.stage, loaded.config) == (12, "finetune_adapter", {"latent_dim": 8})
    fresh = nn.ModuleDict({"emb": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
    fresh.load_state_dict(loaded.model)
    assert torch.equal(fresh["head"].weight, model["emb"].weight)


def test_rewriting_a_step_replaces_its_folder_and_leaves_nothing_aside(tmp_path):
    for seed in (1, 2):
        write_step_checkpoint(snapshot(4, tiny_train_state(seed), CopyBuffers(reuse=False)), tmp_path, FP, keep_last=3)
    assert names_in(tmp_path) == ["step-000000004"]
    second = load_model_file(tmp_path / "step-000000004", FP)
    assert torch.equal(second.model["weight"], tiny_train_state(2).model["weight"])


def test_prune_keeps_the_newest_and_the_one_just_written(tmp_path):
    for step in (1, 2, 3):
        write_step_checkpoint(snapshot(step, tiny_train_state(step), CopyBuffers(reuse=False)), tmp_path, FP,
                              keep_last=None)
    prune(tmp_path, keep_last=1, protect=tmp_path / "step-000000001")
    assert [path.name for _, path in committed_checkpoints(tmp_path)] == ["step-000000001", "step-000000003"]


def test_a_pruned_checkpoint_is_retired_out_of_the_committed_set_and_deleted_when_the_next_save_writes(
        tmp_path, monkeypatch):
    write_step_checkpoint(snapshot(1, tiny_train_state(1), CopyBuffers(reuse=False)), tmp_path, FP, keep_last=1)
    write_step_checkpoint(snapshot(2, tiny_train_state(2), CopyBuffers(reuse=False)), tmp_path, FP, keep_last=1)
    assert names_in(tmp_path) == ["step-000000001.retired", "step-000000002"]
    assert [step for step, _ in committed_checkpoints(tmp_path)] == [2]
    seen_when_writing = []
    real_write = ck_write.write_safetensors

    def spy(path, *args, **kwargs):
        seen_when_writing.append(names_in(tmp_path))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(ck_write, "write_safetensors", spy)
    write_step_checkpoint(snapshot(3, tiny_train_state(3), CopyBuffers(reuse=False)), tmp_path, FP, keep_last=1)
    assert seen_when_writing[0] == ["step-000000002", "step-000000003.partial"]  # step 1 gone before the writes
    assert names_in(tmp_path) == ["step-000000002.retired", "step-000000003"]
    discard_retired(tmp_path)
    assert names_in(tmp_path) == ["step-000000003"]
