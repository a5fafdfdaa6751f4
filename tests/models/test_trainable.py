import pytest
import torch

from latentbridge.errors import UserError
from latentbridge.models.bridge import set_trainable
from latentbridge.training.checkpoint import config_fingerprint, load_model_file, write_model_file
from tests.factories import DIALOGUES, SUMMARIES, make_model, tiny_spec


def _full_loss(model):
    """A loss that reaches every part: encoder -> middle -> adapter -> decoder, plus the latent loss."""
    ids, mask = model.encoder.tokenize(DIALOGUES, 64)
    latents, latent_mask = model.encode(ids, mask)
    pred = model.predict(latents, latent_mask)
    target_mask = torch.tensor([[1, 1, 0, 0]] * len(DIALOGUES))  # leaves a stop slot in every row
    latent = model.latent_loss(pred, latents, target_mask)["loss"]
    target_ids, target_mask = model.decoder.target_ids(SUMMARIES, 32)
    return latent + model.decoder_loss(model.prefix(pred, latent_mask), target_ids, target_mask)


def _expected(model, parts):
    prefixes = {"compressor": ["encoder.compressor."], "middle": ["middle."], "adapter": ["adapter."],
                "encoder": ["encoder.backbone.layers.1.", "encoder.backbone.final_norm."],
                "decoder": ["decoder.model.model.layers.1.", "decoder.model.model.norm."]}
    wanted = [p for part in parts for p in prefixes[part]]
    return {n for n, _ in model.named_parameters() if n.startswith(tuple(wanted))}


@pytest.mark.parametrize("parts", [{"middle"}, {"adapter"}, {"adapter", "decoder"}, {"compressor"},
                                   {"encoder", "compressor"}, {"encoder", "compressor", "middle", "adapter", "decoder"}])
def test_exactly_the_chosen_parts_get_gradients(tiny_assets, parts):
    model = make_model(tiny_assets)
    model.train()
    names = set(set_trainable(model, parts))
    assert names == _expected(model, parts)
    _full_loss(model).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == names


def test_nothing_trains_after_build(model):
    assert not any(p.requires_grad for p in model.parameters())


def test_unknown_part_is_refused(model):
    with pytest.raises(ValueError, match="unknown parts"):
        set_trainable(model, {"middel"})


def test_save_load_round_trip_gives_identical_outputs(tiny_assets, tmp_path):
    a = make_model(tiny_assets, seed=1)
    with torch.no_grad():  # make the unfrozen backbone layers differ from the saved pretrained weights
        for m in a.part_modules("decoder") + a.part_modules("encoder"):
            for p in m.parameters():
                p.add_(0.01 * torch.randn_like(p))
    path = write_model_file(tmp_path / "best_model.pt", a.trainable_state_dict(), config={},
                            fingerprint=config_fingerprint({}), step=1, stage="s")  # as the trainer saves a best model
    b = make_model(tiny_assets, seed=2)
    ids, mask = a.encoder.tokenize(DIALOGUES, 64)
    target_ids, target_mask = a.decoder.target_ids(SUMMARIES, 32)

    def outputs(m):
        latents, latent_mask = m.encode(ids, mask)
        pred = m.predict(latents, latent_mask)
        return latents, pred, m.decoder_loss(m.prefix(pred, latent_mask), target_ids, target_mask)

    a.eval(), b.eval()
    with torch.no_grad():
        before = outputs(b)
        b.load_trainable_state_dict(load_model_file(path).model)  # as a stage hand-over loads it back
        for x, y, z in zip(outputs(a), outputs(b), before):
            assert torch.equal(x, y)
        assert not torch.equal(before[1], outputs(a)[1])


def test_state_holds_only_the_trainable_parts(model):
    keys = model.trainable_state_dict()
    assert any(k.startswith("middle.") for k in keys) and any(k.startswith("adapter.") for k in keys)
    assert not any(k.startswith("encoder.backbone.layers.0.") or k.startswith("decoder.model.model.layers.0.")
                   or "embed" in k for k in keys)


def test_state_from_other_sizes_is_a_user_error(tiny_assets):
    other = make_model(tiny_assets, decoder={"unfrozen_layers": 2}).trainable_state_dict()
    with pytest.raises(UserError, match="does not fit"):
        make_model(tiny_assets).load_trainable_state_dict(other)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_assets):
    grads = []
    for checkpointing in (False, True):
        model = make_model(tiny_assets, runtime={"gradient_checkpointing": checkpointing})
        model.train()
        set_trainable(model, {"adapter", "decoder", "encoder"})
        _full_loss(model).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone(tiny_assets):
    from latentbridge.models.bridge import build_model

    torch.manual_seed(123)
    a = build_model(tiny_spec(tiny_assets), seed=5)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = build_model(tiny_spec(tiny_assets), seed=5)
    assert torch.equal(torch.rand(1), after)
    sa, sb = a.trainable_state_dict(), b.trainable_state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
