"""FSDP over the backbone layers (training/sharding.py) on 2 CPU processes (gloo): the same weights as DDP, an
exact resume, and checkpoints a single process loads (slow: four torchrun runs, ~2 minutes).

accelerate's FSDP does not run on a CPU, so the runs turn sharding on through TrainSettings.shard_layers, the
switch `accelerate launch --config_file docs/accelerate_fsdp.yaml` flips on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentbridge.training.checkpoint import config_fingerprint, find_latest, load_checkpoint, load_model_file

ROOT = Path(__file__).resolve().parents[2]


def _run(tiny_root: Path, out: Path, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "tests" / "training" / "sharded_run.py"), str(tiny_root), str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_model_file(out / "ckpt" / "best_model.pt").model


@pytest.mark.slow
def test_sharded_training_matches_ddp_resumes_exactly_and_writes_whole_checkpoints(tiny_root, tmp_path):
    out = _run(tiny_root, tmp_path / "shard", "shard")
    assert out.count("sharded=True step=8 interrupted=False") == 2
    _run(tiny_root, tmp_path / "ddp", "ddp")
    sharded, ddp = _weights(tmp_path / "shard"), _weights(tmp_path / "ddp")
    assert sharded.keys() == ddp.keys() and any(k.startswith("decoder.model.model.layers.1.") for k in sharded)
    for name in sharded:  # the same averaged gradients, summed in another order
        torch.testing.assert_close(sharded[name], ddp[name], atol=1e-5, rtol=1e-4)

    _run(tiny_root, tmp_path / "resumed", "shard", "3")  # stops (and checkpoints) after 3 steps
    step = load_checkpoint(find_latest(tmp_path / "resumed" / "ckpt"), config_fingerprint({"latent_dim": 32}))
    assert step.model["decoder.model.model.layers.1.mlp.up_proj.weight"].shape == (128, 64)  # whole, not a shard
    _run(tiny_root, tmp_path / "resumed", "shard")
    resumed = _weights(tmp_path / "resumed")
    assert all(torch.equal(resumed[k], sharded[k]) for k in sharded)


def test_the_accelerate_fsdp_config_selects_fsdp_for_our_layer_classes(tiny_root):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    from latentbridge.assets import ensure_tiny_assets
    from tests.factories import make_model

    config = load_config_from_file(str(ROOT / "docs" / "accelerate_fsdp.yaml"))
    assert config.distributed_type == DistributedType.FSDP and config.mixed_precision == "bf16"
    model = make_model(ensure_tiny_assets(tiny_root))
    classes = config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    assert {type(model.decoder.layers[0]).__name__, type(model.encoder.layers[0]).__name__} == set(classes)
