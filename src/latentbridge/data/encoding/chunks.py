"""Encoding a chunk of examples: tokenise, then run the frozen encode function in length-sorted batches.

The encode function is any callable `encode(input_ids (B,T) long, attention_mask (B,T) long) -> latents
(B,K,D)` (or `(latents, latent_mask (B,K))` when K varies per row); it owns its device and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from latentbridge.data.data_specs import CacheSpec
from latentbridge.data.encoding.tokenize import (Tokenizers, pad_sequences, pad_token_id, tokenize_targets,
                                                 tokenize_texts)
from latentbridge.data.rows import FIRST_LINES
from latentbridge.data.sources import Example

EncodeFn = Callable[[Any, Any], Any]


def encode_batched(encode: EncodeFn, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int,
                   sort_by_length: bool = True, info: Optional[dict] = None) -> list[np.ndarray]:
    """Latents (K_i, D) float32 for each token sequence, in the given order.

    Batches are formed longest first after sorting by length (less padding; an out-of-memory shows
    on the first batch), and results are put back in the original order. `info["k"]` receives the
    largest K the encode function returned (its latent slots).
    """
    import torch  # only a cache build encodes; the recipe imports this module torch-free

    order = np.argsort([-len(s) for s in seqs], kind="stable") if sort_by_length else np.arange(len(seqs))
    out: list[Optional[np.ndarray]] = [None] * len(seqs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = pad_sequences([seqs[i] for i in idx], pad_id)
            result = encode(torch.from_numpy(ids), torch.from_numpy(mask))
            latents, lmask = result if isinstance(result, tuple) else (result, None)
            latents = latents.detach().float().cpu().numpy()
            lmask = None if lmask is None else lmask.detach().bool().cpu().numpy()
            if latents.ndim != 3 or latents.shape[0] != len(idx):
                raise ValueError(f"encode returned shape {tuple(latents.shape)}, expected ({len(idx)}, K, D)")
            if info is not None:
                info["k"] = max(info.get("k", 0), latents.shape[1])
            for r, i in enumerate(idx):
                out[i] = latents[r] if lmask is None else latents[r][lmask[r]]
    return out  # type: ignore[return-value]


@dataclass
class Chunk:
    """Encoded examples of one chunk, before they are written in either format."""

    examples: Sequence[Example]
    input_latents: list[np.ndarray]   # (K_i, D) each
    target_latents: list[np.ndarray]
    input_ids: list[list[int]]
    target_ids: Optional[list[list[int]]]
    k_slots: int                      # K of the encode function's output
    latent_dim: int
    truncated_inputs: int = 0         # inputs longer than max_seq_len tokens (cut)
    truncated_targets: int = 0        # targets longer than max_target_len tokens (cut for latents or for ids)
    cut_where: dict[str, list[str]] = field(default_factory=dict)  # "inputs"/"targets" -> where the first few are


def where_read(example: Example) -> str:
    """`data/train.jsonl line 4`: where an example was read, for messages."""
    return f"{example.file} {example.unit} {example.line}" if example.file else example.id


def _first_cut(examples: Sequence[Example], cut: Sequence[bool]) -> list[str]:
    return [where_read(e) for e, c in zip(examples, cut) if c][:FIRST_LINES]


def encode_chunk(examples: Sequence[Example], tok: Tokenizers, encode: EncodeFn, spec: CacheSpec) -> Chunk:
    enc_pad = pad_token_id(tok.encoder)
    inputs, cut_inputs = tokenize_texts(tok.encoder, [e.input_text for e in examples], spec.max_seq_len)
    targets, cut_targets = tokenize_texts(tok.encoder, [e.target_text for e in examples], spec.max_target_len)
    tgt_ids = None
    if spec.store_target_ids or spec.store_target_attention_mask:
        tgt_ids, cut_ids = tokenize_targets(tok.decoder, [e.target_text for e in examples], spec.max_target_len,
                                            tok.target_end_id)
        cut_targets = [a or b for a, b in zip(cut_targets, cut_ids)]
    info: dict = {}
    in_lat = encode_batched(encode, inputs, enc_pad, spec.batch_size, spec.sort_by_length, info)
    tg_lat = encode_batched(encode, targets, enc_pad, spec.batch_size, spec.sort_by_length, info)
    return Chunk(examples, in_lat, tg_lat, inputs, tgt_ids, info.get("k", 0),
                 int(in_lat[0].shape[-1]) if examples else 0, sum(cut_inputs), sum(cut_targets),
                 {"inputs": _first_cut(examples, cut_inputs), "targets": _first_cut(examples, cut_targets)})
