"""gpt2_model accepts both Gemma 3 classes: Gemma3ForCausalLM (270m, 1b) and the language model inside
Gemma3ForConditionalGeneration (4b and larger), here in tiny versions of each."""

import dataclasses

import pytest
import torch
from transformers import Gemma3ForCausalLM

from latentbridge.errors import UserError
from latentbridge.models.decoder import load_decoder_backbone
from tests.factories import SUMMARIES, make_model, save_image_text_gemma3, tiny_spec


@pytest.fixture(scope="module")
def image_text_dir(tiny_assets, tmp_path_factory):
    return save_image_text_gemma3(tiny_assets.decoder_dir, tmp_path_factory.mktemp("gemma3-image-text"))


def test_the_text_decoder_of_an_image_text_checkpoint_loads_as_a_causal_lm(tiny_assets, image_text_dir):
    causal, _ = load_decoder_backbone(tiny_spec(tiny_assets).decoder, "sdpa")
    spec = dataclasses.replace(tiny_spec(tiny_assets).decoder, model=str(image_text_dir))
    text, tokenizer = load_decoder_backbone(spec, "sdpa")
    assert type(text) is Gemma3ForCausalLM and not hasattr(text.model, "vision_tower")
    assert text.lm_head.weight is text.model.embed_tokens.weight  # still tied
    assert text.state_dict().keys() == causal.state_dict().keys()
    assert all(torch.equal(v, text.state_dict()[k]) for k, v in causal.state_dict().items())
    assert tokenizer.chat_template


def test_a_pipeline_on_the_image_text_checkpoint_computes_as_on_the_causal_one(tiny_assets, image_text_dir):
    a = make_model(tiny_assets, seed=1).eval()
    b = make_model(tiny_assets, seed=1, decoder={"model": str(image_text_dir)}).eval()
    ids, mask = a.decoder.target_ids(SUMMARIES, 24)
    latents = torch.randn(len(SUMMARIES), 4, a.spec.adapter.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(a.decoder_loss(a.prefix(latents), ids, mask), b.decoder_loss(b.prefix(latents), ids, mask))


@pytest.mark.parametrize("image_text", [False, True])
def test_gpt2_hidden_dim_is_checked_against_the_loaded_text_decoder(tiny_assets, image_text_dir, image_text):
    spec = dataclasses.replace(tiny_spec(tiny_assets).decoder, expected_hidden_dim=640,
                               model=str(image_text_dir) if image_text else str(tiny_assets.decoder_dir))
    with pytest.raises(UserError, match=r"gpt2_hidden_dim is 640 but the model .* has hidden size 64\..*--gpt2-hidden-dim 64"):
        load_decoder_backbone(spec, "sdpa")
