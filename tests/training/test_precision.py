"""bf16 training keeps fp32 master weights: a CPU run under bf16 autocast with the backbones loaded in bf16, as
flash_attention_2 loads them on a GPU."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from latentbridge.assets import ensure_tiny_assets
from latentbridge.data.loader import Collate
from latentbridge.models.bridge import set_trainable
from latentbridge.models.specs import Runtime
from latentbridge.training.checkpoint import config_fingerprint
from latentbridge.training.stages import BUDGET_KEYS, StageBudget, plan_stages
from latentbridge.training.trainer import StageObjective, Trainer, TrainSettings
from tests.factories import SUMMARIES, TINY_DIM, TINY_K, make_model


@pytest.fixture(scope="session")
def tiny_assets(tiny_root):
    return ensure_tiny_assets(tiny_root, seed=0)  # already built: returns the paths


@pytest.fixture
def bf16_accelerator():
    """An Accelerator with bf16 autocast; accelerate keeps one process-wide state, so it is reset around it."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield Accelerator(cpu=True, mixed_precision="bf16")
    AcceleratorState._reset_state(reset_partial_state=True)


def _adapter_stage():
    budgets = {k: StageBudget(epochs=1, batch_size=4) for k in BUDGET_KEYS}
    return plan_stages(pipeline_mode="two_stage_scientific", training_phase="phase1", run_pretraining=True,
                       run_finetuning=False, adapter_pretrain_use_middle=False, freeze_encoder_compression=True,
                       train_decoder_layers=True, budgets=budgets)[0]


def _batch(model) -> dict:
    g = torch.Generator().manual_seed(0)
    rows = []
    for i, text in enumerate(SUMMARIES):
        ids = model.decoder.target_ids([text], 24)[0][0]
        rows.append({"index": i, "input_latents": torch.randn(TINY_K, TINY_DIM, generator=g).numpy(),
                     "target_latents": torch.randn(TINY_K, TINY_DIM, generator=g).numpy(),
                     "target_ids": ids.numpy(), "target_attention_mask": torch.ones_like(ids).numpy()})
    return Collate(target_pad_id=0)(rows)


def test_bf16_run_keeps_fp32_master_weights_and_small_updates(tiny_assets, tmp_path, bf16_accelerator):
    model = make_model(tiny_assets, runtime={"resolved": Runtime(weight_precision="bf16")})  # as with flash-attn
    stage = _adapter_stage()
    set_trainable(model, stage.trains)
    assert model.decoder.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16  # frozen: stays as loaded
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)

    accelerator = bf16_accelerator
    settings = TrainSettings(learning_rate=1e-4, warmup_steps=0, max_grad_norm=0, checkpoint_dir=tmp_path / "ckpt",
                             run_dir=tmp_path / "run", async_checkpointing=False)
    trainer = Trainer(model, (stage,), lambda s: None, settings, fingerprint=config_fingerprint({}), config={},
                      accelerator=accelerator)
    objective = accelerator.prepare(StageObjective(model, stage, 64, 24))
    optimizer = torch.optim.AdamW(trained, lr=settings.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    weight = model.decoder.layers[-1].mlp.up_proj.weight
    before = weight.detach().clone()
    losses, _, _, _ = trainer.train_step(objective, trained, optimizer, scheduler, [_batch(model)])
    trainer.checkpointer.close()

    assert torch.isfinite(torch.tensor(losses["total"]))
    changed = weight.detach() != before
    lost_in_bf16 = changed & (weight.detach().bfloat16() == before.bfloat16())
    assert changed.float().mean() > 0.9  # AdamW's first step moves every weight by about the learning rate ...
    assert lost_in_bf16.float().mean() > 0.5  # ... which bf16 weights would mostly have rounded away
