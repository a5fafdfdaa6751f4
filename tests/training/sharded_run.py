"""Run by tests/training/test_sharding.py under torchrun (2 CPU processes, gloo): the tiny model, gradient
checkpointing on, trained through a middle and an adapter stage (the top decoder layer trains) over seeded fake
records, its backbone layers sharded with FSDP2 or the stage wrapped in DDP.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/sharded_run.py ASSETS OUT shard|ddp [STOP]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.data.loader import Collate  # noqa: E402
from latentbridge.training.checkpoint import config_fingerprint, find_latest, load_checkpoint  # noqa: E402
from latentbridge.training.stages import BUDGET_KEYS, StageBudget, plan_stages  # noqa: E402
from latentbridge.training.trainer import StageData, Trainer, TrainSettings  # noqa: E402
from tests.factories import TINY_DIM, TINY_K, make_model  # noqa: E402

FP = config_fingerprint({"latent_dim": TINY_DIM})


def records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(3, 9))
        out.append({"index": i, "input_latents": rng.standard_normal((TINY_K, TINY_DIM)).astype(np.float32),
                    "target_latents": rng.standard_normal((int(rng.integers(1, TINY_K + 1)), TINY_DIM)).astype(np.float32),
                    "target_ids": rng.integers(6, 200, size=length), "target_attention_mask": np.ones(length, dtype=np.int64)})
    return out


def main() -> None:
    assets, out, mode = ensure_tiny_assets(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3]
    stop = int(sys.argv[4]) if len(sys.argv) > 4 else None
    budgets = {k: StageBudget(epochs=2, batch_size=4) for k in BUDGET_KEYS}
    stages = plan_stages(pipeline_mode="two_stage_scientific", training_phase="normal", run_pretraining=True,
                         run_finetuning=False, adapter_pretrain_use_middle=False, freeze_encoder_compression=True,
                         train_decoder_layers=True, budgets=budgets)
    data = StageData(records(24, seed=1), records(8, seed=2), Collate(target_pad_id=0))
    settings = TrainSettings(learning_rate=1e-2, warmup_steps=2, gradient_accumulation_steps=2, save_every=2,
                             log_every=1, checkpoint_dir=out / "ckpt", run_dir=out / "run", seed=3,
                             async_checkpointing=False, sample_max_tokens=4, shard_layers=mode == "shard",
                             stop_after_steps=stop)
    model = make_model(assets, seed=0, decoder={"unfrozen_layers": 1}, runtime={"gradient_checkpointing": True})
    trainer = Trainer(model, stages, lambda stage: data, settings, fingerprint=FP, config={"latent_dim": TINY_DIM},
                      accelerator=Accelerator(cpu=True))
    latest = find_latest(out / "ckpt")
    result = trainer.train(load_checkpoint(latest, FP) if latest and stop is None else None)
    print(f"rank {trainer.accelerator.process_index}: sharded={trainer.sharded} step={result.state.global_step} "
          f"interrupted={result.interrupted}", flush=True)
    # the device mesh keeps the gloo group alive past destroy_process_group; a rank that tore it down at exit
    # while the other still ran aborted ("terminate called without an active exception") in ~1 run of 8
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
