"""Training-time reading of the cache: a torch Dataset over a CacheSplit, a collate, the DataLoader the trainer uses.

A batch is a `CacheBatch` (data/batch.py declares its keys and shapes): latents with their masks, target ids
padded with the decoder pad id and their attention mask, input ids (when stored), the rows' index and source.
Both cache formats give the same batch: jsonl through `Collate` over records, npy in one read of its
array columns (`CacheDataset.__getitems__`, which DataLoader calls for each batch).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from latentbridge.data.batch import INDEX, LATENT_SIDES, METADATA_KEYS, TOKEN_SIDES, CacheBatch
from latentbridge.data.cache import CacheSplit
from latentbridge.data.encoding import pad_sequences


def select_indices(split: CacheSplit, total_cap: Optional[int] = None,
                   source_caps: Optional[dict[str, Optional[int]]] = None, seed: int = 0) -> np.ndarray:
    """Rows of `split` honouring a cap per source and a total cap (seeded random subsets, sorted).

    Without caps: every row. The total cap keeps the source mix: round-robin over the sources, or, in a
    split built from a weighted mix, each source in proportion to its weight (its k-th row counts as drawn
    at k / weight).
    """
    rng = np.random.default_rng(seed)
    per_source = []
    for name in split.source_names:
        idx = split.indices_of(name)
        cap = (source_caps or {}).get(name)
        if cap is not None and cap < len(idx):
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
        per_source.append(rng.permutation(idx))
    if total_cap is not None and sum(len(p) for p in per_source) > total_cap:
        weights = split.source_weights or {}
        turn = np.concatenate([np.arange(len(p)) / weights.get(name, 1.0)
                               for name, p in zip(split.source_names, per_source)])
        taken = np.concatenate(per_source)[np.argsort(turn, kind="stable")][:total_cap]
        return np.sort(taken)
    return np.sort(np.concatenate(per_source)) if per_source else np.zeros(0, np.int64)


class CacheDataset(Dataset):
    """Records of one cache split (optionally a subset of its rows) as dicts of numpy arrays."""

    def __init__(self, split: CacheSplit, indices: Optional[Sequence[int]] = None, metadata: bool = True):
        """`metadata=False`: npy batches leave out "id"/"text" (read from the jsonl lines), 2-3x faster."""
        self.split = split
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.metadata = metadata

    def __len__(self) -> int:
        return len(self.split) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(i) if self.indices is None else int(self.indices[i])
        rec = self.split[row]
        rec[INDEX] = row
        return rec

    def __getitems__(self, items: list[int]):
        """A whole batch at once (DataLoader calls this with a batch sampler): the npy format reads it
        straight from its array columns as one collated dict; jsonl returns the records for Collate."""
        if self.split.binary:
            rows = np.asarray(items, dtype=np.int64) if self.indices is None else self.indices[np.asarray(items)]
            return self.split.get_batch(rows, metadata=self.metadata)
        return [self[i] for i in items]


def _pad_latents(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    k = max(1, max(len(x) for x in items))
    if all(len(x) == k for x in items):  # the common case: every row fills all K slots
        return torch.from_numpy(np.stack(items).astype(np.float32, copy=False)), torch.ones(len(items), k, dtype=torch.bool)
    out = np.zeros((len(items), k, items[0].shape[-1]), dtype=np.float32)
    mask = np.zeros((len(items), k), dtype=bool)
    for r, x in enumerate(items):
        out[r, : len(x)] = x
        mask[r, : len(x)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def _pad_ids(items: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad_sequences(items, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


class Collate:
    """Pads latents (with masks) and token ids (decoder pad id for targets) into a batch dict."""

    def __init__(self, target_pad_id: int = 0, input_pad_id: int = 0):
        self.target_pad_id, self.input_pad_id = target_pad_id, input_pad_id

    def __call__(self, recs: list[dict[str, Any]] | CacheBatch) -> CacheBatch:
        if isinstance(recs, dict):  # already a batch (CacheDataset.__getitems__ on the npy format)
            return recs
        batch: dict[str, Any] = {}
        for side in LATENT_SIDES:
            batch[side.latents], batch[side.mask] = _pad_latents([r[side.latents] for r in recs])
        for tokens, pad_id in zip(TOKEN_SIDES, (self.target_pad_id, self.input_pad_id)):
            if tokens.ids in recs[0]:
                batch[tokens.ids], batch[tokens.mask] = _pad_ids([r[tokens.ids] for r in recs], pad_id)
            elif tokens.mask in recs[0]:
                _, batch[tokens.mask] = _pad_ids([r[tokens.mask] for r in recs], 0)
        batch[INDEX] = torch.tensor([r[INDEX] for r in recs], dtype=torch.long)
        for key in METADATA_KEYS:
            if key in recs[0]:
                batch[key] = [r[key] for r in recs]
        return batch  # type: ignore[return-value]


def make_loader(dataset: Dataset, order: Sequence[int], batch_size: int, collate: Callable, *, seed: int = 0,
                num_workers: int = 0, prefetch_factor: Optional[int] = None, pin_memory: bool = False) -> DataLoader:
    """Batches of `dataset` rows in the given `order` (the trainer's seeded, resumable epoch order).
    `prefetch_factor` only applies (and is only passed) with workers."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"num_workers": num_workers, "prefetch_factor": prefetch_factor}
    # a private generator: creating the iterator must not draw from the global RNG (exact resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory, **kwargs)
