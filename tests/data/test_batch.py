"""The batch contract: each latents key names its own mask; no key is derived from another's spelling."""

from __future__ import annotations

import pytest

from latentbridge.data.batch import (INPUT_LATENT_MASK, INPUT_LATENTS, LATENT_SIDES, TARGET_LATENT_MASK, TARGET_LATENTS,
                                     TOKEN_SIDES, CacheBatch, latent_mask_key)


def test_latent_mask_key_names_the_mask_of_each_side():
    assert latent_mask_key(INPUT_LATENTS) == INPUT_LATENT_MASK
    assert latent_mask_key(TARGET_LATENTS) == TARGET_LATENT_MASK


def test_a_key_that_is_not_a_latents_key_has_no_mask():
    with pytest.raises(KeyError):
        latent_mask_key("target_ids")


def test_every_batch_key_of_a_side_is_declared_in_the_cache_batch():
    declared = CacheBatch.__required_keys__ | CacheBatch.__optional_keys__
    for side in LATENT_SIDES:
        assert {side.latents, side.mask} <= declared
    for tokens in TOKEN_SIDES:
        assert {tokens.ids, tokens.mask} <= declared and tokens.length not in declared  # the length is private
