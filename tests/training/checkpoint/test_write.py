"""Writing: the copy off the live state (tied weights once, buffers reused), model files, publish and prune."""

from __future__ import annotations

import torch
from torch import nn

from latentbridge.training.checkpoint import load_model_file, write_model_file
from latentbridge.training.checkpoint.write import CopyBuffers, copy_tensors, prune, snapshot, write_step_checkpoint
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
    prune(tmp_path, keep_others=1, protect=tmp_path / "step-000000001")
    assert names_in(tmp_path) == ["step-000000001", "step-000000003"]


def test_rewriting_the_newest_step_prunes_no_other(tmp_path):
    for step in (3, 4, 4):
        write_step_checkpoint(snapshot(step, tiny_train_state(step), CopyBuffers(reuse=False)), tmp_path, FP, keep_last=2)
    assert names_in(tmp_path) == ["step-000000003", "step-000000004"]
