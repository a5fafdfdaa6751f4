"""bench/bench_cache.py: its raw-memmap reference computes the very batch the Trainer's reader gives."""

import numpy as np
import pytest
import torch

from latentbridge.data.cache import open_cache
from latentbridge.data.loader import CacheDataset, Collate
from tests.factories import import_bench


@pytest.mark.parametrize("int8", [True, False])
def test_the_memmap_reference_computes_the_same_batch_as_the_reader(tmp_path, int8):
    bench_cache = import_bench("bench_cache")
    split = open_cache(bench_cache.build_synthetic(tmp_path / "c", 300, 4, 16, int8, "npy")).split("dialogue", "train")
    rows = np.sort(np.random.default_rng(0).choice(300, 64, replace=False))
    batch = Collate(0)(CacheDataset(split, metadata=False).__getitems__(rows.tolist()))
    reference = bench_cache.memmap_batch(bench_cache.memmap_columns(split), list(split.layout), int8,
                                         "target_attention_mask" in split.fields, rows)
    assert set(reference) == set(batch) - {"index", "source"}
    for key, value in reference.items():
        assert value.dtype == batch[key].dtype and torch.equal(value, batch[key]), key
    assert batch["target_ids"].shape[1] < 128  # trimmed to the batch's longest target: the trim is compared too
