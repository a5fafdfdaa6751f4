"""Seeded construction: a module's random initialisation drawn from its own seed, the global RNG left as it was.

One rule for every seeded build (the pipeline's parts in models/bridge.py, the tiny backbones in models/tiny.py,
the preprocessing compressor): fork torch's CPU RNG, seed it, build, restore. Within one seed the weights are
those of `torch.manual_seed(seed); build()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional, TypeVar

import torch

T = TypeVar("T")


@contextmanager
def forked_seed(seed: Optional[int]) -> Iterator[None]:
    """Torch's CPU RNG seeded with `seed` inside the block and restored after it; None: the global RNG, untouched."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded(seed: Optional[int], build: Callable[[], T]) -> T:
    """`build()` under `forked_seed(seed)`."""
    with forked_seed(seed):
        return build()
