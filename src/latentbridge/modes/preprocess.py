"""`--mode preprocess`: build (or reuse) the latent cache (src/latentbridge/caching.py) and summarise it."""

from __future__ import annotations

from latentbridge.caching import ensure_cache, process_shards
from latentbridge.config import Config
from latentbridge.modes import ModeOptions
from latentbridge.ui.cache_progress import console_progress


def run(config: Config, options: ModeOptions) -> int:
    shards = process_shards(config)  # under torchrun / accelerate launch every rank encodes its share
    result = ensure_cache(config, console_progress(use_rich=config.use_tui), shards=shards)
    if shards.rank != 0:
        return 0
    m = result.cache.manifest
    for rel, entry in sorted(m["splits"].items()):
        skipped = sum(entry["skipped"].values())
        print(f"  {rel}: {entry['count']} records" + (f" ({skipped} rows skipped)" if skipped else ""))
    print(f"Cache {'reused' if result.reused else 'built'}: {result.cache.folder} "
          f"({m['latent_dtype']} latents, dim {m['latent_dim']}, fields {', '.join(m['fields']) or 'none'}).")
    return 0
