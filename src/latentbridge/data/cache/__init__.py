"""The preprocessed latent cache: record codec, atomic builds, manifest, corruption checks, random access.

Layout (one folder per fingerprint, so caches of different settings live side by side):

    <cache root>/<fingerprint[:16]>/
        manifest.json                    written last; its presence means "complete"
        <collection>/<split>.jsonl       one JSON record per line
        <collection>/<split>.offsets.npy uint64 byte offsets, n + 1 entries (cache_write_offsets_index)
        <collection>/<split>.sources.npy uint8 source code per record (caps per source without a scan)

A record: {"id", "source", "input_latents", "target_latents"[, "input_scales", "target_scales"],
"target_ids", "target_attention_mask", "text", "target_text", "input_ids", "attention_mask"} where latents
are base64 of (K, D) int8 (with float32 per-vector scales) or float32. Token lists are unpadded.

A build writes into `<root>/.tmp-<fp>-<host>-<pid>` and renames it into place after the manifest is
written, so a killed build never looks complete and an existing cache is never touched by one. A builder
holds the lock `<root>/.lock-<fp[:16]>` (latentbridge.locks) until it has published its folder: a second
builder of the same cache stops with an error naming the first, and the leftovers of builds whose lock is
free (`.tmp-*`, `.trash-*` of a killed build) are swept by the next start (`clean_stale_builds`). Should
two builders still meet (a file system without locks), the first rename wins and the later one discards
its copy (unless it was asked to replace the cache).

Reading: `open_cache(..., full_check=True)` (what a reused cache gets) checks every file's size and
digest against the manifest; xxh3_128 keeps that cheap next to training (docs/benchmarks.md).

The modules, one concern each: `records` (the record codec, int8 quantisation), `manifest` (format, version,
fingerprint, the file checks), `writer` (one split's files), `publish` (the build folder, its lock, the sweep
of leftovers), `reader` (splits, batches, opening a cache). Import the public names from here.
"""

from latentbridge.data.cache.manifest import (CACHE_FORMAT, CACHE_VERSION, MANIFEST, cache_dir_for, check_files,
                                              fingerprint, library_versions, read_manifest)
from latentbridge.data.cache.publish import CacheBuild, build_lock, clean_stale_builds
from latentbridge.data.cache.reader import Cache, CacheSplit, find_complete_cache, open_cache
from latentbridge.data.cache.records import decode_record, dequantize_int8, encode_record, quantize_int8
from latentbridge.data.cache.writer import NpyAppender, SplitWriter
from latentbridge.files import hash_path  # fingerprint builders import it from here

__all__ = [
    "CACHE_FORMAT", "CACHE_VERSION", "Cache", "CacheBuild", "CacheSplit", "MANIFEST", "NpyAppender", "SplitWriter",
    "build_lock", "cache_dir_for", "check_files", "clean_stale_builds", "decode_record", "dequantize_int8",
    "encode_record", "find_complete_cache", "fingerprint", "hash_path", "library_versions", "open_cache",
    "quantize_int8", "read_manifest",
]
