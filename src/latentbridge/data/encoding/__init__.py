"""Turn examples into cache records: tokenise, run the frozen encode function in length-sorted batches, write.

The encode function is any callable `encode(input_ids (B,T) long, attention_mask (B,T) long) -> latents
(B,K,D)` (or `(latents, latent_mask (B,K))` when K varies per row); it owns its device and dtype.
Inputs are tokenised with the encoder tokenizer (max_seq_len), targets twice: with the encoder tokenizer
(max_target_len) for target latents and with the decoder tokenizer for target ids (text tokens + EOS,
at most max_target_len); texts longer than that are cut and counted.

`build_cache` streams: each split is read `chunk_size` examples at a time, and a chunk is encoded and
appended to the split's files before the next one is read, so memory does not grow with the data. With
several processes (`Shards`), chunk j goes to rank j % N; rank 0 merges the ranks' shards in chunk order.

The modules, one concern each: `tokenize` (texts to ids, the target layout, padding), `chunks` (a chunk
tokenised and encoded), `record_layout` (what the records of each format hold), `splits` (writing one split),
`shards` (a build by several processes), `build` (reuse or build). Import the public names from here.
"""

from latentbridge.data.data_specs import CacheSpec, Shards
from latentbridge.data.encoding.build import BuildResult, build_cache
from latentbridge.data.encoding.chunks import Chunk, EncodeFn, encode_batched, encode_chunk, where_read
from latentbridge.data.encoding.record_layout import jsonl_lines, npy_layout, npy_rows
from latentbridge.data.encoding.shards import SHARD_DONE, SHARDS_DIR
from latentbridge.data.encoding.splits import SplitReport
from latentbridge.data.encoding.tokenize import (CHARS_PER_TOKEN_LIMIT, Tokenizers, pad_sequences, pad_token_id,
                                                 tokenize_targets, tokenize_texts)

__all__ = [
    "BuildResult", "CHARS_PER_TOKEN_LIMIT", "CacheSpec", "Chunk", "EncodeFn", "SHARDS_DIR", "SHARD_DONE",
    "Shards", "SplitReport", "Tokenizers", "build_cache", "encode_batched", "encode_chunk", "jsonl_lines",
    "npy_layout", "npy_rows", "pad_sequences", "pad_token_id", "tokenize_targets",
    "tokenize_texts", "where_read",
]
