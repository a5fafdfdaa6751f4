"""Text in, text out with a loaded LatentBridge: length checks, batching, seeding, autocast."""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Sequence

from accelerate.utils import set_seed

from latentbridge.errors import UserError
from latentbridge.models.backends import autocast

# A text longer than this many times max_seq_len encoder tokens is refused: the model would see only
# its first part (training truncates at max_seq_len too), so its summary would silently miss the rest.
MAX_LENGTH_FACTOR = 4
_CHARS_PER_TOKEN_BOUND = 32  # cheap pre-check before tokenising a huge string


def check_lengths(tokenizer: Any, texts: Sequence[str], where: Sequence[str], max_seq_len: int,
                  note: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> None:
    """UserError for a text longer than MAX_LENGTH_FACTOR x max_seq_len tokens; one note for truncated ones."""
    limit = MAX_LENGTH_FACTOR * max_seq_len
    truncated = []
    for text, place in zip(texts, where):
        if len(text) > limit * _CHARS_PER_TOKEN_BOUND:
            size = f"{len(text)} characters"
        else:
            n = len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
            size = f"{n} tokens" if n > limit else ""
            if n > max_seq_len:
                truncated.append(place)
        if size:
            raise UserError(f"The text from {place} is too long ({size}): the model reads at most max_seq_len = "
                            f"{max_seq_len} tokens, the limit it was trained with, so most of it would be ignored. "
                            f"Split it into parts; texts up to {limit} tokens are accepted and truncated with a note.")
    if truncated:
        note(f"Note: {len(truncated)} text(s) longer than max_seq_len = {max_seq_len} tokens were truncated to it, "
             f"as in training (first: {truncated[0]}).")


def summarize(model: Any, texts: Sequence[str], *, max_input_len: int, sampling: Any, batch_size: int,
              seed: Optional[int] = None, use_middle: bool = True) -> list[str]:
    """Generate one output per text, in batches; `seed` fixes sampling (same seed, same texts -> same outputs)."""
    if seed is not None:
        set_seed(seed)
    device = model.device
    out: list[str] = []
    with autocast(device, model.compute_dtype):
        for start in range(0, len(texts), batch_size):
            out += model.generate(list(texts[start:start + batch_size]), max_input_len, sampling, use_middle=use_middle)
    return out
