"""The decoder's token rules, once (latentbridge.token_layout): the target layout and the cut at a stop id."""

from __future__ import annotations

import pytest

from latentbridge.token_layout import cut_at_stop, target_layout, target_room


@pytest.mark.parametrize(("max_len", "end_id", "room"), [(4, 9, 3), (1, 9, 0), (4, None, 4), (0, None, 0)])
def test_target_room_leaves_a_place_for_the_end_token(max_len, end_id, room):
    assert target_room(max_len, end_id) == room


def test_a_target_is_its_text_tokens_then_the_end_token():
    assert target_layout([5, 6], 8, end_id=1) == [5, 6, 1]
    assert target_layout([5, 6, 7, 8, 9], 4, end_id=1) == [5, 6, 7, 1]  # cut to max_len ids in all
    assert target_layout([5, 6, 7], 1, end_id=1) == [1]


def test_without_an_end_token_a_target_is_only_cut():
    assert target_layout((5, 6, 7), 2, end_id=None) == [5, 6]


def test_a_row_is_cut_before_its_first_stop_id():
    assert cut_at_stop([4, 5, 1, 6, 2], {1, 2}) == [4, 5]
    assert cut_at_stop([4, 5, 6], [1, 2]) == [4, 5, 6]
    assert cut_at_stop([2, 4], [1, 2]) == []


def test_the_cache_lays_targets_out_as_the_decoder_does(tiny_root):
    """The cache's target ids (data/encoding) and the decoder's, both laid out by token_layout: the same ids."""
    from latentbridge.assets import ensure_tiny_assets
    from latentbridge.data.encoding import tokenize_targets
    from tests.factories import make_model

    decoder = make_model(ensure_tiny_assets(tiny_root, seed=0)).decoder
    texts = ["Max says hi.", "a much longer summary of the dialogue, cut short", ""]
    for max_len in (1, 4, 32):
        decoder_rows = [decoder.target_ids([t], max_len)[0][0].tolist() for t in texts]
        cache_rows = tokenize_targets(decoder.tokenizer, texts, max_len, decoder.end_id)[0]
        assert decoder_rows == cache_rows
        assert all(len(row) <= max_len and row[-1] == decoder.end_id for row in cache_rows)
