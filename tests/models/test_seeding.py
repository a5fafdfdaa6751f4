"""One seeding rule for every seeded build (latentbridge.models.seeding)."""

from __future__ import annotations

import torch
from torch import nn

from latentbridge.models.seeding import forked_seed, seeded


def test_a_seeded_build_has_the_weights_of_a_manual_seed_build():
    torch.manual_seed(3)
    expected = nn.Linear(8, 4).weight.detach().clone()
    torch.manual_seed(11)  # whatever the global RNG holds before
    assert torch.equal(seeded(3, lambda: nn.Linear(8, 4)).weight, expected)


def test_a_seeded_build_leaves_the_global_rng_as_it_was():
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    seeded(3, lambda: nn.Linear(8, 4))
    with forked_seed(7):
        torch.randn(10)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_without_a_seed_the_build_draws_from_the_global_rng():
    torch.manual_seed(5)
    expected = nn.Linear(8, 4).weight.detach().clone()
    torch.manual_seed(5)
    assert torch.equal(seeded(None, lambda: nn.Linear(8, 4)).weight, expected)
    assert not torch.equal(torch.random.get_rng_state(), torch.manual_seed(5).get_state())  # it advanced
