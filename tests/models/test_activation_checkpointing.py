import copy

import torch

from latentbridge.models.bridge import set_trainable
from latentbridge.models.activation_checkpointing import SavedForBackward, is_checkpointed
from latentbridge.training.trainer import frozen_subtrees
from tests.factories import SUMMARIES, make_model


def _adapter_step(model):
    """An adapter-stage step as the trainer runs it: the adapter trains, the frozen decoder is in eval mode and
    the prefix's gradient flows through all of it. Returns (activation bytes saved for backward, adapter grads)."""
    set_trainable(model, {"adapter"})
    model.train()
    for module in frozen_subtrees(model):
        module.eval()
    latents = torch.randn(len(SUMMARIES), 4, model.spec.adapter.latent_dim, generator=torch.Generator().manual_seed(0))
    ids, mask = model.decoder.target_ids(SUMMARIES, 32)
    with SavedForBackward(model) as saved:
        loss = model.decoder_loss(model.prefix(latents), ids, mask)
    loss.backward()
    return saved.bytes, {n: p.grad.clone() for n, p in model.adapter.named_parameters()}


def test_frozen_decoder_in_eval_mode_is_checkpointed(tiny_assets):
    plain, grads = _adapter_step(make_model(tiny_assets, seed=0))
    model = make_model(tiny_assets, seed=0, runtime={"gradient_checkpointing": True})
    checkpointed, grads_ckpt = _adapter_step(model)
    assert not any(layer.training for layer in model.decoder.layers)  # eval mode, as the trainer leaves it
    assert checkpointed < plain / 3, (checkpointed, plain)
    assert all(torch.allclose(grads[n], grads_ckpt[n], atol=1e-6) for n in grads)


def test_checkpointed_eval_layers_keep_dropout_off(tiny_assets):
    """Attention dropout set high: in eval mode neither the forward nor the recompute in backward may apply it."""
    results = []
    for checkpointing in (False, True, True):
        model = make_model(tiny_assets, seed=0, runtime={"gradient_checkpointing": checkpointing})
        for layer in model.decoder.layers:
            layer.self_attn.attention_dropout = 0.5
        results.append(_adapter_step(model)[1])
    for grads in results[1:]:
        assert all(torch.allclose(results[0][n], grads[n], atol=1e-6) for n in grads)


def test_a_deep_copy_stays_checkpointed_on_its_own_layers(tiny_assets):
    model = make_model(tiny_assets, runtime={"gradient_checkpointing": True})
    copied = copy.deepcopy(model)
    layer = copied.decoder.layers[0]
    assert is_checkpointed(layer) and layer.forward.__self__ is layer
    assert not is_checkpointed(make_model(tiny_assets).decoder.layers[0])
