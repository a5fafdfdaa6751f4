"""The decoder's token rules, written once for the three places that apply them: a target as the decoder trains
on it (models/decoder.py, the preprocessed cache in data/, the direct baseline) and where a generated row ends.

Plain lists of ids, stdlib only: models, data and evaluation all import it (data and models never import each
other), and each keeps its own tokenizer call.
"""

from __future__ import annotations

from typing import Collection, Optional, Sequence


def target_room(max_len: int, end_id: Optional[int]) -> int:
    """How many text tokens a target of at most `max_len` ids keeps: one fewer when an end token closes it."""
    return max(max_len - (0 if end_id is None else 1), 0)


def target_layout(text_ids: Sequence[int], max_len: int, end_id: Optional[int]) -> list[int]:
    """One decoder target: the text's tokens (no BOS) cut to `target_room`, then `end_id` (none when None)."""
    closing = [] if end_id is None else [end_id]
    return list(text_ids[: target_room(max_len, end_id)]) + closing


def cut_at_stop(row: Sequence[int], stop_ids: Collection[int]) -> list[int]:
    """A generated row up to (not including) its first stop id; the whole row when it has none."""
    end = next((i for i, token in enumerate(row) if token in stop_ids), len(row))
    return list(row[:end])
