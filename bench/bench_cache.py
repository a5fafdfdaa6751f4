"""Cache benchmarks (run by hand): python bench/bench_cache.py [--records 20000] [--quick]

(a) random-access read throughput in batches of 256: the jsonl cache through its offsets index (raw
    records, and the full CacheDataset + Collate path), int8 and fp32, next to a raw numpy memmap of
    the same latents (the reference limit), all in one run;
(b) preprocess encode throughput, length-sorted vs unsorted batches, with a random ModernBERT
    (the tiny preset's shape, and a small one);
(c) bytes per record, int8 vs fp32;
(d) the reader the Trainer uses (CacheDataset without metadata + Collate, as modes/train.stage_data
    builds it) against a raw numpy memmap of the same latents as float32, timed in alternating rounds;
(e) the preprocess encoder pass (encode_batched with the encode function caching.load_encode builds)
    against a bare `model(**batch)` loop over the same length-sorted, pre-padded batches, alternating.
Prints a markdown table per part; numbers go into docs/benchmarks.md ("Data and cache").
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from common import alternate, load_average, ratio  # noqa: E402

from latentbridge.data.batch import INDEX, LATENT_SIDES, LENGTHS, TARGET_ATTENTION_MASK, TARGET_IDS  # noqa: E402
from latentbridge.data.cache import CacheBuild, open_cache  # noqa: E402
from latentbridge.data.loader import CacheDataset, Collate  # noqa: E402

BATCH = 256


def build_synthetic(folder: Path, n: int, k: int, d: int, int8: bool, fmt: str, seed: int = 0) -> Path:
    """A cache of n records of (k, d) latents and 16-111 target ids, written through the real writers."""
    from latentbridge.data.encoding import CacheSpec, Chunk, jsonl_lines, npy_layout, npy_rows
    from latentbridge.data.sources import Example

    rng = np.random.default_rng(seed)
    spec = CacheSpec(max_target_len=128, int8=int8, format=fmt)
    manifest = {"format": "latentbridge-cache", "version": 1, "fingerprint": f"bench{int8}{fmt}",
                "latent_dtype": "int8" if int8 else "float32", "fields": spec.fields(),
                "pad_token_id": 0, "source_names": ["dialogue"], "latent_dim": d}
    with CacheBuild(folder, manifest) as build:
        w = build.split_writer("dialogue", "train")
        if fmt == "npy":
            w.allocate(npy_layout(spec, k, d, 0, 0))
        for start in range(0, n, 1000):
            m = min(1000, n - start)
            lat = rng.standard_normal((m, 2, k, d)).astype(np.float32)
            chunk = Chunk([Example(str(start + i), "dialogue", "", "") for i in range(m)], list(lat[:, 0]),
                          list(lat[:, 1]), [[] for _ in range(m)],
                          [rng.integers(5, 30000, rng.integers(16, 112)).tolist() for _ in range(m)], k, d)
            if fmt == "jsonl":
                for line in jsonl_lines(chunk, spec):
                    w.write(line, "dialogue")
            else:
                lines, blocks, lengths = npy_rows(chunk, spec, w.layout)
                for line in lines:
                    w.write(line, "dialogue")
                w.write_columns(blocks, lengths)
        build.close_split(w, {})
        build.record_extra_files()
        return build.commit()


def _bytes_per_record(folder: Path, n: int) -> float:
    return sum(p.stat().st_size for p in (folder / "dialogue").iterdir()) / n


def _rate(fn, batches: list[np.ndarray]) -> float:
    fn(batches[0])  # warm up (page cache, descriptors)
    t0 = time.perf_counter()
    for b in batches:
        fn(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - t0)


def bench_reads(n: int, k: int, d: int, tmp: Path) -> list[tuple[str, float, float]]:
    import torch

    rng = np.random.default_rng(1)
    batches = [np.sort(rng.choice(n, BATCH, replace=False)) for _ in range(max(8, min(60, n // BATCH)))]
    rows = []
    for fmt in ("jsonl", "npy"):
        for int8 in (True, False):
            folder = build_synthetic(tmp / f"c{int8}{fmt}", n, k, d, int8, fmt)
            split = open_cache(folder).split("dialogue", "train")
            size = _bytes_per_record(folder, n)
            name = f"{fmt}, {'int8' if int8 else 'fp32'}"
            ds, collate = CacheDataset(split), Collate(0)
            if fmt == "jsonl":
                rows.append((f"{name}: records (split[i])", _rate(lambda b: [split[i] for i in b], batches), size))
            rows.append((f"{name}: batch tensors (Dataset + collate)",
                         _rate(lambda b: collate(ds.__getitems__(list(b))), batches), size))
            if fmt == "npy":
                lean = CacheDataset(split, metadata=False)
                rows.append((f"{name}: batch tensors, metadata=False (no ids)",
                             _rate(lambda b: collate(lean.__getitems__(list(b))), batches), size))
            loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, sampler=np.concatenate(batches).tolist(),
                                                 collate_fn=collate, num_workers=2, prefetch_factor=4)
            it = iter(loader)
            next(it)  # worker start-up is not counted
            t0 = time.perf_counter()
            got = sum(len(b[INDEX]) for b in it)
            rows.append((f"{name}: DataLoader, 2 workers (after start-up)", got / (time.perf_counter() - t0), size))
    # the reference: the same latents as a raw float32 memmap (input + target), fancy-indexed per batch
    mm_path = tmp / "latents.f32"
    mm = np.lib.format.open_memmap(mm_path, mode="w+", dtype=np.float32, shape=(n, 2, k, d))
    mm[:] = np.random.default_rng(0).standard_normal((n, 2, k, d), dtype=np.float32)
    mm.flush()
    ref = np.load(mm_path, mmap_mode="r")
    rows.append(("raw numpy memmap, fp32 latents only (reference limit)", _rate(lambda b: np.asarray(ref[b]), batches),
                 ref[0].nbytes))
    return rows


SHAPES = {"tiny (hidden 64, 2 layers)": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=4),
          "small (hidden 256, 4 layers)": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                               num_attention_heads=4)}


def _corpus_sequences(n: int, max_len: int = 128) -> list[list[int]]:
    """Token ids of `n` texts of the bundled corpus (dialogues and wikitext-like documents), seeded order."""
    from latentbridge.data.corpus import dialogue_rows, pretrain_rows
    from latentbridge.data.encoding import tokenize_texts
    from tests.factories import make_tokenizer  # a WordLevel tokenizer trained on the bundled corpus

    texts = [r["dialogue"] for r in dialogue_rows(0)["train"]] + [r["text"] for r in pretrain_rows(0)["wikitext"]]
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:n]]
    return tokenize_texts(make_tokenizer(), texts, max_len)[0]


def _random_encoder(kw: dict):
    """(the segment-pooling compressor, a random ModernBERT of shape `kw`), seeded, in eval mode."""
    import torch
    from transformers import ModernBertConfig, ModernBertModel
    from transformers.utils import logging as hf_logging

    from latentbridge.models.encoder import SegmentPoolCompressor
    from tests.factories import make_tokenizer

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = ModernBertConfig(vocab_size=len(make_tokenizer()), pad_token_id=0, bos_token_id=2, eos_token_id=3,
                           cls_token_id=2, sep_token_id=3, max_position_embeddings=512, local_attention=64,
                           global_attn_every_n_layers=2, attn_implementation="sdpa", **kw)
    return SegmentPoolCompressor(kw["hidden_size"], 64, 8, True).eval(), ModernBertModel(cfg).eval()


def bench_preprocess(quick: bool, rounds: int = 3) -> list[tuple[str, str, float, float]]:
    """Encode throughput with a random ModernBERT + the segment-pooling compressor; sorted and unsorted
    runs alternate and the median of `rounds` is kept (the machine is shared and noisy)."""
    from latentbridge.data.encoding import encode_batched

    seqs = _corpus_sequences(256 if quick else 1024)
    rows = []
    for name, kw in SHAPES.items():
        comp, model = _random_encoder(kw)

        def encode(ids, mask):
            return comp(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

        bs = 32
        encode_batched(encode, seqs[: 2 * bs], 0, bs, True)  # warm up
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for sort in (True, False):
                t0 = time.perf_counter()
                encode_batched(encode, seqs, 0, bs, sort)
                times[sort].append(time.perf_counter() - t0)
        real = sum(len(s) for s in seqs)
        for sort in (True, False):
            order = np.argsort([-len(s) for s in seqs], kind="stable") if sort else np.arange(len(seqs))
            padded = sum(max(len(seqs[i]) for i in order[j:j + bs]) * len(order[j:j + bs])
                         for j in range(0, len(seqs), bs))
            rows.append((name, f"{bs}, {'sorted' if sort else 'unsorted'}", len(seqs) / float(np.median(times[sort])),
                         real / padded))
    return rows


def memmap_columns(split) -> dict[str, np.ndarray]:
    """The npy cache's array columns opened as plain numpy memmaps (the reference reads these files itself)."""
    return {name: np.load(split.folder / f"{split.rel}.{name}.npy", mmap_mode="r")
            for name in [*split.layout, LENGTHS]}


def memmap_batch(columns: dict[str, np.ndarray], names: list[str], int8: bool, target_mask: bool,
                 rows: np.ndarray) -> dict:
    """The reference: the reader's batch by hand from raw memmaps, numpy fancy indexing, one gather per column:
    latents trimmed to the batch's longest row and (int8) dequantised with their scales, latent masks, target
    ids padded to the longest target and their mask. The reader must give equal tensors (tested)."""
    import torch

    lengths = columns[LENGTHS][rows]                                          # (B, C)
    out = {}
    for side in LATENT_SIDES:
        c = names.index(side.latents)
        k = max(1, int(lengths[:, c].max()))
        x = columns[side.latents][rows, :k]                                    # (B, k, D)
        if int8:
            x = x.astype(np.float32) * columns[side.scales][rows, :k, None]
        out[side.latents] = torch.from_numpy(x)
        out[side.mask] = torch.from_numpy(np.arange(k)[None, :] < lengths[:, c, None])
    c = names.index(TARGET_IDS)
    width = max(1, int(lengths[:, c].max()))
    out[TARGET_IDS] = torch.from_numpy(columns[TARGET_IDS][rows, :width].astype(np.int64))
    if target_mask:
        out[TARGET_ATTENTION_MASK] = torch.from_numpy((np.arange(width)[None, :] < lengths[:, c, None]).astype(np.int64))
    return out


def bench_trainer_reader(n: int, k: int, d: int, tmp: Path, rounds: int) -> list[tuple[str, float, float, Any]]:
    """(cache, reader records/s, reference records/s, reader rate / reference rate as a common.Ratio): the
    reader the Trainer uses against memmap_batch on the npy files of an npy cache of the same records (the
    jsonl cache against the reference over the npy files of its twin)."""
    rng = np.random.default_rng(2)
    batches = [np.sort(rng.choice(n, BATCH, replace=False)) for _ in range(max(8, min(40, n // BATCH)))]
    out = []
    for fmt, int8 in (("npy", True), ("npy", False), ("jsonl", True)):
        split = open_cache(build_synthetic(tmp / f"t{fmt}{int8}", n, k, d, int8, fmt)).split("dialogue", "train")
        twin = split if fmt == "npy" else open_cache(build_synthetic(tmp / f"tnpy{int8}", n, k, d, int8, "npy")
                                                     ).split("dialogue", "train")
        columns, names = memmap_columns(twin), list(twin.layout)
        target_mask = TARGET_ATTENTION_MASK in twin.fields
        ds, collate = CacheDataset(split, metadata=False), Collate(0)  # as modes/train.stage_data builds them

        def reader():
            for b in batches:
                collate(ds.__getitems__(b.tolist()))

        def memmap():
            for b in batches:
                memmap_batch(columns, names, int8, target_mask, b)

        times = alternate({"reader": reader, "memmap": memmap}, rounds)
        records = len(batches) * BATCH
        reader_s, memmap_s = times["reader"]["seconds"], times["memmap"]["seconds"]
        out.append((f"{fmt}, {'int8' if int8 else 'fp32'}", records / float(np.median(reader_s)),
                    records / float(np.median(memmap_s)), ratio(memmap_s, reader_s)))
    return out


def bench_encoder_pass(quick: bool, rounds: int) -> list[tuple[str, float, float, Any]]:
    """(encoder, our pass records/s, bare loop records/s, our rate / bare rate as a common.Ratio)."""
    import torch

    from latentbridge.data.encoding import encode_batched, pad_sequences
    from latentbridge.models.backends import autocast
    from latentbridge.models.encoder import LatentEncoder
    from latentbridge.models.specs import EncoderSpec
    from tests.factories import make_tokenizer

    seqs = _corpus_sequences(256 if quick else 1024)
    bs = 32
    order = np.argsort([-len(x) for x in seqs], kind="stable")
    padded = [pad_sequences([seqs[i] for i in order[j:j + bs]], 0) for j in range(0, len(seqs), bs)]
    batches = [{"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)} for ids, mask in padded]
    out = []
    for name, kw in SHAPES.items():
        _, backbone = _random_encoder(kw)
        model = LatentEncoder(backbone, make_tokenizer(), EncoderSpec(model="random", latent_dim=64, latent_seq_len=8))
        model.eval().requires_grad_(False)
        device, dtype = torch.device("cpu"), torch.float32

        def encode(input_ids, attention_mask):  # as caching.load_encode builds it
            with autocast(device, dtype):
                return model(input_ids.to(device), attention_mask.to(device))

        def ours():
            encode_batched(encode, seqs, 0, bs, sort_by_length=True)

        def bare():
            with torch.inference_mode():
                for batch in batches:
                    model(**batch)

        times = alternate({"ours": ours, "bare": bare}, rounds)
        ours_s, bare_s = times["ours"]["seconds"], times["bare"]["seconds"]
        out.append((name, len(seqs) / float(np.median(ours_s)), len(seqs) / float(np.median(bare_s)),
                    ratio(bare_s, ours_s)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--k", type=int, default=8, help="latents per record (latent_seq_len)")
    ap.add_argument("--d", type=int, default=256, help="latent_dim")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-preprocess", action="store_true")
    ap.add_argument("--skip-reads", action="store_true")
    ap.add_argument("--skip-ratios", action="store_true", help="leave out (d) and (e)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds of (d) and (e)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscription on a busy box)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    print(f"# bench_cache: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, python {platform.python_version()}")
    if not args.skip_reads:
        n = 2000 if args.quick else args.records
        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_reads(n, args.k, args.d, Path(tmp))
        print(f"\n(a)+(c) random access, {n} records of 2 x ({args.k}, {args.d}) latents + 16-111 target ids, "
              f"batches of {BATCH}\n")
        print("| reader | records/s | bytes/record |\n|---|---:|---:|")
        for name, rate, size in rows:
            print(f"| {name} | {rate:,.0f} | {size:,.0f} |", flush=True)
    if not args.skip_preprocess:
        print("\n(b) preprocess encode (CPU), length-sorted vs unsorted\n")
        print("| encoder | batch, order | records/s | real tokens / padded tokens |\n|---|---|---:|---:|")
        for name, how, rate, eff in bench_preprocess(args.quick):
            print(f"| {name} | {how} | {rate:,.0f} | {eff:.2f} |", flush=True)
    if not args.skip_ratios:
        n = 2000 if args.quick else args.records
        print(f"\n(d) the Trainer's reader vs the same batch by hand from raw memmaps (memmap_batch), {n} records, "
              f"batches of {BATCH}, {args.rounds} alternating rounds, {load_average()}\n")
        print("| cache | reader records/s | memmap records/s | reader / memmap: median/median (rounds min / median / "
              "max) |\n|---|---:|---:|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            for name, ours, ref, r in bench_trainer_reader(n, args.k, args.d, Path(tmp), args.rounds):
                print(f"| {name} | {ours:,.0f} | {ref:,.0f} | {r.describe()} |", flush=True)
        print(f"\n(e) preprocess encoder pass vs a bare model(**batch) loop, same length-sorted batches of 32, "
              f"{args.rounds} alternating rounds\n")
        print("| encoder | ours records/s | bare records/s | ours / bare: median/median (rounds min / median / max) |\n"
              "|---|---:|---:|---:|")
        for name, ours, bare, r in bench_encoder_pass(args.quick, args.rounds):
            print(f"| {name} | {ours:,.0f} | {bare:,.0f} | {r.describe()} |", flush=True)


if __name__ == "__main__":
    main()
