"""Tokenising for the cache: targets in the decoder's layout (token_layout.py) and the count of texts cut to fit."""

from __future__ import annotations

from latentbridge.data.encoding import tokenize_targets


def test_targets_fit_max_len_with_their_end_token_and_the_cut_ones_are_counted(tokenizer):
    long_text = " ".join(["hello"] * 40)
    ids, cut = tokenize_targets(tokenizer, [long_text, "hello"], max_len=6)
    assert [len(seq) for seq in ids] == [6, 2] and cut == [True, False]
    assert ids[0][-1] == ids[1][-1] == tokenizer.eos_token_id


def test_a_max_len_with_no_room_for_text_gives_only_the_end_token(tokenizer):
    ids, cut = tokenize_targets(tokenizer, ["hello"], max_len=1)
    assert ids == [[tokenizer.eos_token_id]] and cut == [True]
