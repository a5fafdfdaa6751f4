"""Tokenising for the cache: the decoder's target layout and the count of texts cut to fit."""

from __future__ import annotations

from latentbridge.data.encoding import target_layout, tokenize_targets


def test_target_layout_is_the_text_tokens_then_the_end_token():
    assert target_layout([5, 6, 7, 8], room=2, end_id=1) == [5, 6, 1]
    assert target_layout([5, 6], room=4, end_id=1) == [5, 6, 1]
    assert target_layout([5, 6, 7], room=2, end_id=None) == [5, 6]


def test_targets_fit_max_len_with_their_end_token_and_the_cut_ones_are_counted(tokenizer):
    long_text = " ".join(["hello"] * 40)
    ids, cut = tokenize_targets(tokenizer, [long_text, "hello"], max_len=6)
    assert [len(seq) for seq in ids] == [6, 2] and cut == [True, False]
    assert ids[0][-1] == ids[1][-1] == tokenizer.eos_token_id


def test_a_max_len_with_no_room_for_text_gives_only_the_end_token(tokenizer):
    ids, cut = tokenize_targets(tokenizer, ["hello"], max_len=1)
    assert ids == [[tokenizer.eos_token_id]] and cut == [True]
