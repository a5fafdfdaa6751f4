"""The record codec: one JSON line per example, latents as base64 of (K, D) int8 (with float32 per-vector
scales) or float32; token lists unpadded. The npy format keeps only the metadata here (latents and tokens
live in array columns, cache/writer.py)."""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

import numpy as np

from latentbridge.data.batch import ID, LATENT_SIDES, SOURCE, TOKEN_SIDES

# --- quantisation ----------------------------------------------------------------------------


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., D) float -> (int8 values, float32 per-vector scales); x ~= q * scale[..., None]."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.abs(x).max(axis=-1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale[..., None].astype(np.float32)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unb64(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s, validate=True), dtype=dtype)


# --- records ---------------------------------------------------------------------------------


def encode_record(example_id: str, source: str, input_latents: np.ndarray, target_latents: np.ndarray,
                  int8: bool, extra: Mapping[str, Any]) -> bytes:
    """One JSON line for a record; latents are (K, D) float arrays."""
    rec: dict[str, Any] = {ID: example_id, SOURCE: source}
    for side, lat in zip(LATENT_SIDES, (input_latents, target_latents)):
        if int8:
            q, s = quantize_int8(lat)
            rec[side.latents], rec[side.scales] = _b64(q), _b64(s)
        else:
            rec[side.latents] = _b64(np.asarray(lat, dtype=np.float32))
    rec.update(extra)
    return (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def decode_record(line: bytes, latent_dim: int, int8: bool) -> dict[str, Any]:
    """A stored line -> dict with float32 (K, D) latents and int64 token arrays."""
    rec = json.loads(line)
    for side in LATENT_SIDES:
        if side.latents not in rec:  # npy format: latents live in array columns
            continue
        if int8:
            q = _unb64(rec[side.latents], np.int8).reshape(-1, latent_dim)
            s = _unb64(rec.pop(side.scales), np.float32)
            if len(s) != len(q):
                raise ValueError("scale count does not match latent count")
            rec[side.latents] = dequantize_int8(q, s)
        else:
            rec[side.latents] = _unb64(rec[side.latents], np.float32).reshape(-1, latent_dim).copy()
    for key in (k for tokens in TOKEN_SIDES for k in (tokens.ids, tokens.mask)):
        if key in rec:
            rec[key] = np.asarray(rec[key], dtype=np.int64)
    return rec
