"""The batch contract: every key a cache record or a training batch holds, declared once.

The cache writes these names (records, npy columns), the loader collates them, and each stage's objective
reads its share (`LatentObjectiveBatch`, `TokenObjectiveBatch`). A batch of B rows, K latents, L tokens:

    input_latents  (B, K_in, D) float32    input_latent_mask  (B, K_in) bool
    target_latents (B, K_tg, D) float32    target_latent_mask (B, K_tg) bool
    target_ids (B, L) long, target_attention_mask (B, L) long    [when the cache stores them]
    input_ids (B, T) long, attention_mask (B, T) long            [when the cache stores them]
    index (B,) long: the row in its split; source (and id, text, target_text when read): lists

Keys are named here and looked up through `LatentKeys` / `TokenKeys`, never built from one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # annotations only: the recipe imports the data layer torch-free
    from torch import Tensor

INPUT_LATENTS = "input_latents"
INPUT_LATENT_MASK = "input_latent_mask"
INPUT_SCALES = "input_scales"    # int8 caches: a float32 scale per latent vector (records and npy columns)
TARGET_LATENTS = "target_latents"
TARGET_LATENT_MASK = "target_latent_mask"
TARGET_SCALES = "target_scales"
TARGET_IDS = "target_ids"
TARGET_ATTENTION_MASK = "target_attention_mask"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
INDEX = "index"
ID = "id"
SOURCE = "source"
TEXT = "text"
TARGET_TEXT = "target_text"
LENGTHS = "lengths"  # the npy format's lengths table (a column file, never a batch key)

OPTIONAL_FIELDS = (TEXT, INPUT_IDS, ATTENTION_MASK, TARGET_IDS, TARGET_ATTENTION_MASK)  # what a cache may store
METADATA_KEYS = (ID, SOURCE, TEXT, TARGET_TEXT)  # lists of one value per row


@dataclass(frozen=True)
class LatentKeys:
    """The keys of one side's latents: the (K, D) vectors, their (K,) mask, the int8 scales."""

    latents: str
    mask: str
    scales: str


@dataclass(frozen=True)
class TokenKeys:
    """The keys of one side's tokens: ids, their attention mask, and the private key holding a row's length
    while a batch is gathered from the npy columns (dropped before the batch is returned)."""

    ids: str
    mask: str
    length: str


INPUT_SIDE = LatentKeys(INPUT_LATENTS, INPUT_LATENT_MASK, INPUT_SCALES)
TARGET_SIDE = LatentKeys(TARGET_LATENTS, TARGET_LATENT_MASK, TARGET_SCALES)
LATENT_SIDES = (INPUT_SIDE, TARGET_SIDE)
TARGET_TOKENS = TokenKeys(TARGET_IDS, TARGET_ATTENTION_MASK, "_target_len")
INPUT_TOKENS = TokenKeys(INPUT_IDS, ATTENTION_MASK, "_input_len")
TOKEN_SIDES = (TARGET_TOKENS, INPUT_TOKENS)

_MASK_OF_LATENTS = {side.latents: side.mask for side in LATENT_SIDES}


def latent_mask_key(latents_key: str) -> str:
    """The mask key of a latents key (`input_latents` -> `input_latent_mask`)."""
    return _MASK_OF_LATENTS[latents_key]


class LatentObjectiveBatch(TypedDict):
    """What a stage with the latent objective reads from a cached batch (the middle's regression)."""

    input_latents: Tensor
    input_latent_mask: Tensor
    target_latents: Tensor
    target_latent_mask: Tensor


class TokenObjectiveBatch(LatentObjectiveBatch):
    """What a stage with the token objective reads: the latents the adapter turns into a prefix, and the
    decoder's target tokens."""

    target_ids: Tensor
    target_attention_mask: Tensor


class _RequiredBatchKeys(LatentObjectiveBatch):
    index: Tensor
    source: list[str]


class CacheBatch(_RequiredBatchKeys, total=False):
    """A batch as the loader yields it, in either cache format: the latents, index and source always; the
    rest when the cache stores it (and id, text, target_text unless the npy format was read without them)."""

    target_ids: Tensor
    target_attention_mask: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    id: list[str]
    text: list[str]
    target_text: list[str]
