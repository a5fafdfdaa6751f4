"""`cache_use_embeddings_for_training: false`: the middle stages encode the cached text live through the
frozen encoder, and their losses equal the cached path's up to the int8 rounding of the cached latents."""

from __future__ import annotations

import pytest
import torch

from latentbridge.models.bridge import build_model, set_trainable
from latentbridge.cached_latents import ensure_cache, load_cache_encoder_state
from latentbridge.models.specs import Runtime
from latentbridge.recipe import model_spec
from latentbridge.modes.train import stage_data
from latentbridge.recipe import plan
from latentbridge.training.trainer import StageObjective
from tests.factories import assets_config

ROWS = 8
FIT_STEPS = 40


@pytest.fixture(scope="module")
def cached(tiny_root, tmp_path_factory):
    """(config, cache): a tiny int8 cache that keeps the text."""
    tmp = tmp_path_factory.mktemp("live")
    c = assets_config(tiny_root, preprocess_cache_dir=str(tmp / "cache"), cache_store_text=True, max_train_samples=16,
                      pretrain_middle_max_samples=16, pretrain_adapter_max_samples=16, use_tui=False)
    assert c.cache_store_embeddings_int8
    return c, ensure_cache(c, log=lambda _: None).cache


def model_fitted_to(c, cache, objective_of, batch):
    """A model holding the cache's compressor, its middle fitted to `batch` (an untrained middle's loss
    hardly depends on which latents it reads, so a loss comparison would prove nothing)."""
    model = build_model(model_spec(c, Runtime()), seed=c.seed)
    load_cache_encoder_state(cache, model.encoder)
    set_trainable(model, {"middle"})
    optimizer = torch.optim.AdamW(model.middle.parameters(), lr=1e-2)
    objective = objective_of(model)
    for _ in range(FIT_STEPS):
        loss = objective(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def half_int8_step(latents: torch.Tensor) -> torch.Tensor:
    """Per vector, the largest error of int8 rounding: scale / 2, where scale = max |x| / 127 (data.cache)."""
    return latents.abs().amax(-1, keepdim=True) / 127 / 2


def first_order_int8_bound(model, batch) -> float:
    """sum |dL/dx| x half step over every input and target latent component: the most int8 rounding can
    move the stage's loss, to first order, away from its value on the exact latents (all errors aligned)."""
    x = batch["input_latents"].clone().requires_grad_(True)
    t = batch["target_latents"].clone().requires_grad_(True)
    loss = model.latent_loss(model.predict(x, batch["input_latent_mask"]), t, batch["target_latent_mask"])["loss"]
    gx, gt = torch.autograd.grad(loss, [x, t])
    return float((gx.abs() * half_int8_step(x.detach())).sum() + (gt.abs() * half_int8_step(t.detach())).sum())


@pytest.mark.parametrize("stage_name", ["pretrain_middle", "finetune_middle"])
def test_live_latents_give_the_cached_losses_within_int8_error(cached, stage_name):
    c, cache = cached
    stage = {s.name: s for s in plan(c)}[stage_name]
    live_stage = {s.name: s for s in plan(c.replace(cache_use_embeddings_for_training=False))}[stage_name]
    assert stage.uses_cache and not live_stage.uses_cache
    data = stage_data(cache, c.seed)(stage)
    batch = data.collate([data.train[i] for i in range(ROWS)])
    text_only = {k: v for k, v in batch.items() if "latent" not in k}  # the live stage has nothing cached to read
    model = model_fitted_to(c, cache, lambda m: StageObjective(m, stage, c.max_seq_len, c.max_target_len), batch)

    # the live latents are the cached ones before rounding: within half an int8 step of each vector (+ float noise)
    for text, max_len, key in (("text", c.max_seq_len, "input"), ("target_text", c.max_target_len, "target")):
        with torch.no_grad():
            live, mask = model.encode(*model.encoder.tokenize(batch[text], max_len))
        assert torch.equal(mask, batch[f"{key}_latent_mask"])
        err = (live - batch[f"{key}_latents"]).abs()
        assert (err <= half_int8_step(batch[f"{key}_latents"]) + 1e-5).all(), float(err.max())

    with torch.no_grad():
        from_cache = StageObjective(model, stage, c.max_seq_len, c.max_target_len)(batch)["loss"]
        from_text = StageObjective(model, live_stage, c.max_seq_len, c.max_target_len)(text_only)["loss"]
        wrong_rows = StageObjective(model, stage, c.max_seq_len, c.max_target_len)(
            {**batch, "target_latents": batch["target_latents"].roll(1, 0)})["loss"]
    # x2: room for second-order terms. Measured: |live - cached| 1.5e-5 (stage 1) and 5e-7 (stage 3) against
    # tolerances of 2.5e-3 and 1.2e-3 (the bound adds every rounding error with the worst sign)
    tolerance = 2 * first_order_int8_bound(model, batch)
    assert abs(float(from_text) - float(from_cache)) <= tolerance
    # the tolerance is tight enough to matter: latents of the wrong rows move the loss far beyond it (~0.7)
    assert abs(float(wrong_rows) - float(from_cache)) > 10 * tolerance
