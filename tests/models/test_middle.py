import pytest
import torch
import torch.nn.functional as F

from latentbridge.models.middle import MiddleTransformer, init_stop_latent
from latentbridge.models.specs import STOP_LATENT_INITS, LossSpec, MiddleSpec

SPEC = MiddleSpec(latent_dim=16, latent_seq_len=4, layers=2, num_heads=2, ffn_multiplier=2.0, dropout=0.0)


def _unit(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


@pytest.mark.parametrize("kind", STOP_LATENT_INITS)
def test_stop_latent_init_is_seeded_and_documented(kind):
    a, b = init_stop_latent(kind, 16, 7), init_stop_latent(kind, 16, 7)
    assert torch.equal(a, b)
    if kind == "random_normalized":
        assert torch.allclose(a.norm(), torch.tensor(1.0))
        assert not torch.equal(a, init_stop_latent(kind, 16, 8))
    if kind == "zeros":
        assert a.abs().sum() == 0


def test_unknown_stop_init_is_refused():
    with pytest.raises(ValueError):
        init_stop_latent("ones", 16, 0)


def test_generation_stops_at_the_first_slot_near_the_stop_latent(monkeypatch):
    torch.manual_seed(0)
    middle = MiddleTransformer(SPEC)
    pred = _unit(2, 4, 16)
    pred[0, 2] = middle.stop_latent.detach()            # row 0 stops at slot 2
    monkeypatch.setattr(middle, "forward", lambda latents, mask=None: pred)
    out, keep = middle.generate(_unit(2, 4, 16))
    assert keep.tolist() == [[True, True, False, False], [True] * 4]
    assert out[0, 2:].abs().sum() == 0 and torch.equal(out[1], pred[1])


def test_generation_keeps_at_least_one_latent(monkeypatch):
    torch.manual_seed(0)
    middle = MiddleTransformer(SPEC)
    monkeypatch.setattr(middle, "forward", lambda latents, mask=None: middle.stop_latent.detach().expand(1, 4, 16))
    assert middle.generate(_unit(1, 4, 16))[1].tolist() == [[True, False, False, False]]


def test_middle_learns_where_to_stop():
    """Trained on targets of 2 latents, generation ends after 2 latents; on 3, after 3."""
    torch.manual_seed(0)
    middle = MiddleTransformer(SPEC)
    opt = torch.optim.AdamW(middle.parameters(), lr=1e-2)
    inputs, targets = _unit(8, 4, 16), _unit(8, 4, 16)
    lengths = torch.tensor([2, 3] * 4)
    inputs[:, 0, 0] = lengths.float()  # the length is readable from the input
    target_mask = torch.arange(4)[None, :] < lengths[:, None]
    for _ in range(120):
        losses = middle.latent_loss(middle(inputs), targets, target_mask, LossSpec())
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    middle.eval()
    _, keep = middle.generate(inputs)
    assert keep.sum(1).tolist() == lengths.tolist()


def test_without_stop_latent_generation_runs_to_latent_seq_len():
    middle = MiddleTransformer(MiddleSpec(latent_dim=16, latent_seq_len=4, num_heads=2, use_stop_latent=False))
    assert middle.stop_latent is None
    assert middle.generate(_unit(2, 4, 16))[1].all()


def test_losses_reward_the_right_prediction():
    middle = MiddleTransformer(SPEC)
    target = _unit(6, 4, 16)
    mask = torch.ones(6, 4, dtype=torch.bool)
    right = middle.latent_loss(target.clone(), target, mask, LossSpec())
    wrong = middle.latent_loss(target.roll(1, dims=0), target, mask, LossSpec())
    assert right["mse"] == 0 and right["contrastive"] < wrong["contrastive"] and right["loss"] < wrong["loss"]


def test_padded_target_slots_carry_no_loss():
    middle = MiddleTransformer(SPEC)
    pred, target = _unit(2, 4, 16), _unit(2, 4, 16)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    base = middle.latent_loss(pred, target, mask, LossSpec(contrastive_weight=0.0))["mse"]
    target[:, 3] = 100.0  # beyond the stop slot: ignored
    assert middle.latent_loss(pred, target, mask, LossSpec(contrastive_weight=0.0))["mse"] == base


def test_padded_input_latents_do_not_change_the_prediction():
    torch.manual_seed(0)
    middle = MiddleTransformer(SPEC).eval()
    x = _unit(1, 4, 16)
    mask = torch.tensor([[True, True, False, False]])
    a = middle(x, mask)
    x[:, 2:] = 5.0
    assert torch.allclose(a, middle(x, mask), atol=1e-6)
