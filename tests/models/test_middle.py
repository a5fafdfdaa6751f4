import dataclasses

import pytest
import torch
import torch.nn.functional as F

from latentbridge.config import field_meta
from latentbridge.models.middle import MIDDLES, MiddleMLP, MiddleTransformer, build_middle, init_stop_latent
from latentbridge.models.specs import STOP_LATENT_INITS, LossSpec, MiddleSpec

SPEC = MiddleSpec(latent_dim=16, latent_seq_len=4, layers=2, num_heads=2, ffn_multiplier=2.0, dropout=0.0,
                  mlp_layers=2, mlp_hidden_dim=32)
ARCHITECTURES = pytest.mark.parametrize("arch", list(MIDDLES))


def middle_of(arch: str, **changes):
    return build_middle(dataclasses.replace(SPEC, architecture=arch, **changes))


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


@ARCHITECTURES
def test_generation_stops_at_the_first_slot_near_the_stop_latent(monkeypatch, arch):
    torch.manual_seed(0)
    middle = middle_of(arch)
    pred = _unit(2, 4, 16)
    pred[0, 2] = middle.stop_latent.detach()            # row 0 stops at slot 2
    monkeypatch.setattr(middle, "forward", lambda latents, mask=None: pred)
    out, keep = middle.generate(_unit(2, 4, 16))
    assert keep.tolist() == [[True, True, False, False], [True] * 4]
    assert out[0, 2:].abs().sum() == 0 and torch.equal(out[1], pred[1])


@ARCHITECTURES
def test_generation_keeps_at_least_one_latent(monkeypatch, arch):
    torch.manual_seed(0)
    middle = middle_of(arch)
    monkeypatch.setattr(middle, "forward", lambda latents, mask=None: middle.stop_latent.detach().expand(1, 4, 16))
    assert middle.generate(_unit(1, 4, 16))[1].tolist() == [[True, False, False, False]]


@ARCHITECTURES
def test_middle_learns_where_to_stop(arch):
    """Trained on targets of 2 latents, generation ends after 2 latents; on 3, after 3."""
    torch.manual_seed(0)
    middle = middle_of(arch)
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


@ARCHITECTURES
def test_without_stop_latent_generation_runs_to_latent_seq_len(arch):
    middle = middle_of(arch, use_stop_latent=False)
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


@ARCHITECTURES
def test_padded_input_latents_do_not_change_the_prediction(arch):
    torch.manual_seed(0)
    middle = middle_of(arch).eval()
    x = _unit(1, 4, 16)
    mask = torch.tensor([[True, True, False, False]])
    a = middle(x, mask)
    x[:, 2:] = 5.0
    assert torch.allclose(a, middle(x, mask), atol=1e-6)


def test_middle_architectures_are_the_config_choices():
    assert tuple(MIDDLES) == field_meta("middle_architecture")["choices"]
    assert isinstance(middle_of("transformer"), MiddleTransformer) and isinstance(middle_of("mlp"), MiddleMLP)
    with pytest.raises(ValueError, match="not one of"):
        middle_of("rnn")


def test_mlp_middle_has_mlp_layers_blocks_mlp_hidden_dim_wide():
    middle = middle_of("mlp", mlp_layers=3, mlp_hidden_dim=40)
    assert len(middle.ffns) == 3
    assert all(ffn.up.weight.shape == (40, 4 * 16) and ffn.down.weight.shape == (4 * 16, 40) for ffn in middle.ffns)


def test_mlp_middle_loss_falls_on_a_tiny_batch():
    torch.manual_seed(0)
    middle = middle_of("mlp")
    opt = torch.optim.AdamW(middle.parameters(), lr=3e-3)
    inputs, targets = _unit(8, 4, 16), _unit(8, 4, 16)
    mask = torch.ones(8, 4, dtype=torch.bool)
    losses = []
    for _ in range(60):
        loss = middle.latent_loss(middle(inputs), targets, mask, LossSpec())["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]  # measured: 0.67 -> 0.004


def test_mlp_middle_reads_fewer_latents_than_slots_as_padding():
    torch.manual_seed(0)
    middle = middle_of("mlp").eval()
    x = _unit(2, 2, 16)
    padded = torch.cat([x, _unit(2, 2, 16)], dim=1)
    mask = torch.tensor([[True, True, False, False]] * 2)
    assert torch.allclose(middle(x), middle(padded, mask), atol=1e-6)
    with pytest.raises(ValueError, match="at most latent_seq_len=4"):
        middle(_unit(1, 5, 16))
