"""Latent metrics: MSE and cosine over the target's slots, in-batch retrieval, stop length."""

import pytest
import torch
import torch.nn.functional as F

from latentbridge.evaluation.latent_metrics import LatentMetricsAccumulator, latent_metrics


def _latents(b=8, k=4, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, k, d, generator=g), dim=-1)


def test_perfect_prediction():
    t = _latents()
    m = latent_metrics(t, t, torch.ones(8, 4, dtype=torch.bool))
    assert m.mse == pytest.approx(0.0) and m.cosine == pytest.approx(1.0) and m.retrieval_top1 == 1.0
    assert m.retrieval_chance == pytest.approx(1 / 8) and m.n_slots == 32 and m.length_accuracy is None


def test_only_target_slots_count():
    t = _latents()
    mask = torch.zeros(8, 4, dtype=torch.bool)
    mask[:, :2] = True
    pred = t.clone()
    pred[:, 2:] = -t[:, 2:]  # wrong only where the target has no latent
    m = latent_metrics(pred, t[:, :2], mask[:, :2])
    assert m.cosine == pytest.approx(1.0) and m.n_slots == 16


def test_shuffled_predictions_are_not_retrieved():
    t = _latents()
    m = latent_metrics(t.roll(1, dims=0), t, torch.ones(8, 4, dtype=torch.bool))
    assert m.retrieval_top1 == 0.0


def test_length_accuracy_and_accumulation_over_batches():
    t = _latents()
    mask = torch.ones(8, 4, dtype=torch.bool)
    mask[:4, 3] = False  # four targets have 3 latents
    keep = torch.ones(8, 4, dtype=torch.bool)
    keep[:2, 3] = False  # the middle stopped after 3 for two of them
    acc = LatentMetricsAccumulator()
    acc.update(t[:4], t[:4], mask[:4], keep[:4])
    acc.update(t[4:], t[4:], mask[4:], keep[4:])
    m = acc.result()
    assert m.length_accuracy == pytest.approx(6 / 8)
    assert m.retrieval_chance == pytest.approx(1 / 4) and m.n_examples == 8
