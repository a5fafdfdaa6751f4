import torch

from latentbridge.models.encoder import SegmentPoolCompressor
from tests.factories import DIALOGUES, SUMMARIES, TINY_DIM, TINY_K, TINY_P


def test_pipeline_shapes(model):
    ids, mask = model.encoder.tokenize(DIALOGUES, 64)
    latents, latent_mask = model.encode(ids, mask)
    assert latents.shape == (4, TINY_K, TINY_DIM) and latent_mask.shape == (4, TINY_K)
    pred = model.predict(latents, latent_mask)
    assert pred.shape == (4, TINY_K, TINY_DIM)
    prefix = model.prefix(latents, latent_mask)
    assert prefix.shape == (4, TINY_P, model.decoder.hidden_size)
    target_ids, target_mask = model.decoder.target_ids(SUMMARIES, 32)
    loss = model.decoder_loss(prefix, target_ids, target_mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    losses = model.latent_loss(pred, latents, latent_mask)
    assert set(losses) == {"loss", "mse", "contrastive", "stop"} and torch.isfinite(losses["loss"])


def test_latents_are_unit_length_when_normalised(model):
    ids, mask = model.encoder.tokenize(DIALOGUES[:2], 64)
    latents, latent_mask = model.encode(ids, mask)
    assert torch.allclose(latents[latent_mask].norm(dim=-1), torch.ones(int(latent_mask.sum())), atol=1e-5)


def test_short_text_gets_fewer_latents():
    comp = SegmentPoolCompressor(hidden_dim=8, latent_dim=4, latent_seq_len=4, normalize=True)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    latents, latent_mask = comp(torch.randn(2, 6, 8), mask)
    assert latent_mask.tolist() == [[True, True, False, False], [True] * 4]
    assert latents[0, 2:].abs().sum() == 0


def test_segments_are_contiguous_and_cover_every_valid_token():
    comp = SegmentPoolCompressor(hidden_dim=8, latent_dim=4, latent_seq_len=4, normalize=True)
    mask = torch.tensor([[1] * 10 + [0] * 2])
    seg = comp.segment_weights(mask)[0].argmax(-1)[:10].tolist()
    assert seg == sorted(seg) and set(seg) == {0, 1, 2, 3}
    assert comp.segment_weights(mask)[0, 10:].sum() == 0


def test_pooling_ignores_garbage_at_padded_positions():
    comp = SegmentPoolCompressor(hidden_dim=8, latent_dim=4, latent_seq_len=2, normalize=False)
    hidden = torch.randn(1, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    clean, _ = comp(hidden, mask)
    hidden[:, 3:] = float("nan")
    dirty, _ = comp(hidden, mask)
    assert torch.equal(clean, dirty)


def test_padding_in_a_batch_does_not_change_a_text_latents(model):
    alone = model.encode(*model.encoder.tokenize([DIALOGUES[3]], 64))[0]
    batched = model.encode(*model.encoder.tokenize(DIALOGUES, 64))[0][3:4]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_prefix_comes_out_at_token_embedding_scale(model):
    latents = torch.nn.functional.normalize(torch.randn(3, TINY_K, TINY_DIM), dim=-1)
    prefix = model.prefix(latents)
    ids = torch.randint(0, model.decoder.model.config.vocab_size, (64,))
    token_rms = model.decoder.embed(ids).pow(2).mean().sqrt()
    assert torch.allclose(prefix.pow(2).mean().sqrt(), token_rms, rtol=0.25)
