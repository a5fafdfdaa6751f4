"""`--mode preprocess`: build (or reuse) the latent cache (src/latentbridge/cached_latents.py) and summarise it."""

from __future__ import annotations

from latentbridge.cached_latents import ensure_cache, process_shards
from latentbridge import recipe
from latentbridge.config import Config
from latentbridge.models.runtime import log_notes, resolve_runtime
from latentbridge.modes import ModeOptions, RunResult
from latentbridge.ui.cache_progress import console_progress


def run(config: Config, options: ModeOptions) -> RunResult:
    runtime = resolve_runtime(recipe.runtime_request(config))
    log_notes(runtime)
    shards = process_shards(runtime)  # under torchrun / accelerate launch every rank encodes its share
    result = ensure_cache(config, console_progress(use_rich=config.use_tui, every_s=2.0), shards=shards,
                          runtime=runtime)
    done = RunResult("preprocess", cache_dir=result.cache.folder)
    if shards.rank != 0:
        return done
    m = result.cache.manifest
    for rel, entry in sorted(m["splits"].items()):
        print(f"  {rel}: {entry['count']} records{_notes(entry)}")
    print(f"Cache {'reused' if result.reused else 'built'}: {result.cache.folder} "
          f"({m['latent_dtype']} latents, dim {m['latent_dim']}, fields {', '.join(m['fields']) or 'none'}).")
    return done


def _notes(entry: dict) -> str:
    """' (3 rows skipped; 12 inputs, 1 target cut; mix: wiki 700, dataset 300)' for a split's manifest entry."""
    notes = []
    skipped = sum(entry["skipped"].values())
    if skipped:
        notes.append(f"{skipped} row{'s' * (skipped != 1)} skipped")
    cut = entry.get("truncated", {})  # caches built before issue 9 do not record it
    if cut.get("inputs") or cut.get("targets"):
        notes.append(f"{cut['inputs']} inputs, {cut['targets']} targets cut to max_seq_len {cut['max_seq_len']} / "
                     f"max_target_len {cut['max_target_len']}")
    if entry.get("weights"):
        notes.append("mix: " + ", ".join(f"{name} {entry['sources'].get(name, 0)}" for name in entry["weights"]))
    return f" ({'; '.join(notes)})" if notes else ""
