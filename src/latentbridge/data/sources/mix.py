"""Mixing pretraining sources, by `datasets.interleave_datasets`: with weights, each example comes from a source
drawn with probability proportional to its weight (seeded) until one source runs out; without weights (the
three seed-004 sources), round-robin until all are used."""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from latentbridge.data.data_specs import DataSpec
from latentbridge.data.rows import Skips
from latentbridge.data.sources.streams import Example, SplitStream

# --- mixing sources --------------------------------------------------------------------------------


def mix_order(sizes: list[int], weights: Optional[list[float]], seed: int) -> Iterator[int]:
    """Source indices in sampling order, by `datasets.interleave_datasets` over one small column per source.

    With weights: each draw picks a source with probability proportional to its weight (seeded), until one
    source has given all of its `sizes`; without: round-robin until every source has. Interleaving the
    indices, not the examples, keeps the documents streaming (interleaving iterable datasets of examples
    read ~7k examples/s here, this ~100k/s).
    """
    import datasets  # takes seconds to import; the recipe imports this module

    datasets.disable_progress_bars()
    columns = [datasets.Dataset.from_dict({"s": np.full(n, i, dtype=np.int32)}) for i, n in enumerate(sizes)]
    if weights is None:
        mixed = datasets.interleave_datasets(columns, stopping_strategy="all_exhausted_without_replacement")
    else:
        total = sum(weights)
        mixed = datasets.interleave_datasets(columns, probabilities=[w / total for w in weights], seed=seed,
                                             stopping_strategy="first_exhausted")
    for batch in mixed.with_format("numpy").iter(batch_size=65536):
        yield from batch["s"].tolist()


def _mixed(streams: list[SplitStream], weights: Optional[list[float]], seed: int, cap: Optional[int],
           skips: Skips) -> Iterator[Example]:
    """Examples of the sources' streams in `mix_order`, at most `cap`. A weighted mix stops when a source has no
    more usable examples (so the realised shares follow the weights); round-robin goes on with the others."""
    iterators = [iter(s) for s in streams]
    done = [False] * len(streams)
    taken = 0
    try:
        for k in mix_order([s.expected or 0 for s in streams], weights, seed):
            if cap is not None and taken >= cap:
                return
            if done[k]:
                continue
            example = next(iterators[k], None)
            if example is None:
                if weights is not None:
                    return
                done[k] = True
                continue
            taken += 1
            yield example
    finally:
        for stream in streams:
            skips.update(stream.skipped, f"{stream.source_names[0]}:")


def pretrain_split(spec: DataSpec, parts: list[dict[str, SplitStream]], split: str) -> SplitStream:
    """One split of the pretraining collection: its sources' streams mixed (weighted, or round-robin)."""
    streams = [p[split] for p in parts]
    names = tuple(s.name for s in spec.pretrain)
    weights = [float(s.weight) for s in spec.pretrain] if spec.weighted else None
    cap = spec.pretrain_max_train if split == "train" else spec.max_validation

    def read(skips: Skips) -> Iterator[Example]:
        yield from _mixed(streams, weights, spec.seed, cap, skips)

    def expected() -> int:
        total = sum(s.expected or 0 for s in streams)
        return total if cap is None else min(total, cap)

    return SplitStream(read, names, expected, dict(zip(names, weights)) if weights else None)
