"""What a chunk's records hold in each format: self-contained JSON lines (jsonl), or metadata lines plus
fixed-width array columns and a lengths table (npy)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from latentbridge.data.batch import (ATTENTION_MASK, ID, INPUT_IDS, INPUT_SIDE, LATENT_SIDES, SOURCE,
                                     TARGET_ATTENTION_MASK, TARGET_IDS, TARGET_SIDE, TARGET_TEXT, TEXT)
from latentbridge.data.cache import encode_record, quantize_int8
from latentbridge.data.data_specs import CacheSpec
from latentbridge.data.encoding.chunks import Chunk

def jsonl_lines(chunk: Chunk, spec: CacheSpec) -> list[bytes]:
    """One self-contained JSON line per example (the jsonl format)."""
    lines = []
    for k, e in enumerate(chunk.examples):
        extra: dict[str, Any] = {}
        if spec.store_text:
            extra[TEXT], extra[TARGET_TEXT] = e.input_text, e.target_text
        if spec.store_input_ids:
            extra[INPUT_IDS] = chunk.input_ids[k]
        if spec.store_attention_mask:
            extra[ATTENTION_MASK] = [1] * len(chunk.input_ids[k])
        if spec.store_target_ids:
            extra[TARGET_IDS] = chunk.target_ids[k]
        if spec.store_target_attention_mask:
            extra[TARGET_ATTENTION_MASK] = [1] * len(chunk.target_ids[k])
        lines.append(encode_record(e.id, e.source, chunk.input_latents[k], chunk.target_latents[k], spec.int8, extra))
    return lines


def npy_layout(spec: CacheSpec, k_slots: int, latent_dim: int, enc_pad: int, dec_pad: int) -> dict[str, tuple]:
    """Array columns of the npy format: name -> (width, inner shape, dtype, pad value)."""
    lat = "int8" if spec.int8 else "float32"
    layout: dict[str, tuple] = {}
    for side in LATENT_SIDES:
        layout[side.latents] = (k_slots, (latent_dim,), lat, 0)
        if spec.int8:
            layout[side.scales] = (k_slots, (), "float32", 0)
    if spec.store_input_ids:
        layout[INPUT_IDS] = (spec.max_seq_len, (), "int32", enc_pad)
    elif spec.store_attention_mask:
        layout[ATTENTION_MASK] = (spec.max_seq_len, (), "uint8", 0)
    if spec.store_target_ids:
        layout[TARGET_IDS] = (spec.max_target_len, (), "int32", dec_pad)
    elif spec.store_target_attention_mask:
        layout[TARGET_ATTENTION_MASK] = (spec.max_target_len, (), "uint8", 0)
    return layout


def _row_values(chunk: Chunk, spec: CacheSpec, k: int) -> dict[str, np.ndarray]:
    """The unpadded values of record `k` for each array column of the npy format."""
    values: dict[str, np.ndarray] = {}
    for side, lat in ((INPUT_SIDE, chunk.input_latents[k]), (TARGET_SIDE, chunk.target_latents[k])):
        if spec.int8:
            values[side.latents], values[side.scales] = quantize_int8(lat)
        else:
            values[side.latents] = lat
    if spec.store_input_ids:
        values[INPUT_IDS] = np.asarray(chunk.input_ids[k])
    elif spec.store_attention_mask:
        values[ATTENTION_MASK] = np.ones(len(chunk.input_ids[k]), dtype=np.uint8)
    if spec.store_target_ids:
        values[TARGET_IDS] = np.asarray(chunk.target_ids[k])
    elif spec.store_target_attention_mask:
        values[TARGET_ATTENTION_MASK] = np.ones(len(chunk.target_ids[k]), dtype=np.uint8)
    return values


def npy_rows(chunk: Chunk, spec: CacheSpec, layout: Mapping[str, Sequence]) -> tuple[list[bytes], dict[str, np.ndarray],
                                                                                     np.ndarray]:
    """(metadata lines, padded column blocks, lengths table) of a chunk in the npy format; `layout` as
    SplitWriter.layout (name -> [width, inner, dtype, pad])."""
    n = len(chunk.examples)
    names = list(layout)
    blocks = {name: np.full((n, width, *inner), pad, dtype=dtype)
              for name, (width, inner, dtype, pad) in layout.items()}
    lengths = np.zeros((n, len(names)), dtype=np.int32)
    lines = []
    for k, e in enumerate(chunk.examples):
        meta: dict[str, Any] = {ID: e.id, SOURCE: e.source}
        if spec.store_text:
            meta[TEXT], meta[TARGET_TEXT] = e.input_text, e.target_text
        lines.append((json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
        for c, (name, value) in enumerate(_row_values(chunk, spec, k).items()):
            if len(value) > blocks[name].shape[1]:
                raise ValueError(f"{name}: {len(value)} entries exceed the column width {blocks[name].shape[1]}")
            blocks[name][k, : len(value)] = value
            lengths[k, names.index(name)] = len(value)
    return lines, blocks, lengths
