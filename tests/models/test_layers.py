import torch

from latentbridge.models.layers import RMSNorm, apply_rope, rope_cos_sin


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i, j):
        qi = apply_rope(q, *rope_cos_sin(torch.tensor([float(i)]), 8, 10000.0))
        kj = apply_rope(k, *rope_cos_sin(torch.tensor([float(j)]), 8, 10000.0))
        return (qi * kj).sum()

    assert torch.allclose(score(3, 1), score(7, 5), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_rope_keeps_vector_length():
    x = torch.randn(2, 2, 5, 8)
    y = apply_rope(x, *rope_cos_sin(torch.arange(5), 8, 10000.0))
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)


def test_rmsnorm_gives_unit_rms():
    y = RMSNorm(16, eps=1e-6)(torch.randn(3, 16) * 7)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3), atol=1e-4)
