"""Tokenising for the cache: texts cut to a length (counting what was cut), the decoder's target layout,
padding. Inputs are tokenised with the encoder tokenizer (max_seq_len), targets twice: with the encoder
tokenizer (max_target_len) for target latents and with the decoder tokenizer for target ids (text tokens + the
end token, at most max_target_len)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from latentbridge.token_layout import target_layout, target_room

CHARS_PER_TOKEN_LIMIT = 32  # texts are cut to max_len * this many characters before tokenising


@dataclass
class Tokenizers:
    encoder: Any
    decoder: Any
    target_end_id: Optional[int] = None  # token closing every target (None: the decoder's EOS)


def tokenize_texts(tokenizer, texts: Sequence[str], max_len: int,
                   special: bool = True) -> tuple[list[list[int]], list[bool]]:
    """(token ids cut to `max_len`, whether each text was cut). A text is cut when it was longer than
    CHARS_PER_TOKEN_LIMIT characters a token or the tokenizer truncated it (fast tokenizers keep the rest as
    `overflowing`; a slow one is only checked by characters)."""
    cut = [len(t) > max_len * CHARS_PER_TOKEN_LIMIT for t in texts]
    texts = [t[: max_len * CHARS_PER_TOKEN_LIMIT] for t in texts]
    out = tokenizer(list(texts), add_special_tokens=special, truncation=True, max_length=max_len)
    encodings = out.encodings or [None] * len(texts)
    truncated = [c or bool(e is not None and e.overflowing) for c, e in zip(cut, encodings)]
    return [list(ids) for ids in out["input_ids"]], truncated


def tokenize_targets(tokenizer, texts: Sequence[str], max_len: int,
                     end_id: Optional[int] = None) -> tuple[list[list[int]], list[bool]]:
    """(decoder target ids in token_layout's `target_layout`, at most `max_len` in all, whether each text was
    cut); the end token is `end_id`, default the tokenizer's EOS."""
    eos = tokenizer.eos_token_id if end_id is None else end_id
    room = target_room(max_len, eos)
    if room > 0:
        ids, truncated = tokenize_texts(tokenizer, texts, room, special=False)
    else:
        ids, truncated = [[] for _ in texts], [True] * len(texts)
    return [target_layout(seq, max_len, eos) for seq in ids], truncated


def pad_token_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded (ids, mask), both (N, longest) int64; at least one column."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, mask
