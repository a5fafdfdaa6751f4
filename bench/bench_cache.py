"""Cache benchmarks (run by hand): python bench/bench_cache.py [--records 20000] [--quick]

(a) random-access read throughput in batches of 256: the jsonl cache through its offsets index (raw
    records, and the full CacheDataset + Collate path), int8 and fp32, next to a raw numpy memmap of
    the same latents (the reference limit), all in one run;
(b) preprocess encode throughput, length-sorted vs unsorted batches, with a random ModernBERT
    (the tiny preset's shape, and a small one);
(c) bytes per record, int8 vs fp32.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from latentbridge.data.cache import CacheBuild, open_cache  # noqa: E402
from latentbridge.data.loader import CacheDataset, Collate  # noqa: E402

BATCH = 256


def build_synthetic(folder: Path, n: int, k: int, d: int, int8: bool, fmt: str, seed: int = 0) -> Path:
    """A cache of n records of (k, d) latents and 16-111 target ids, written through the real writers."""
    from latentbridge.data.preprocess import CacheSpec, Chunk, jsonl_lines, npy_layout, npy_rows
    from latentbridge.data.sources import Example

    rng = np.random.default_rng(seed)
    spec = CacheSpec(max_target_len=128, int8=int8, format=fmt)
    manifest = {"format": "latentbridge-cache", "version": 1, "fingerprint": f"bench{int8}{fmt}",
                "latent_dtype": "int8" if int8 else "float32", "fields": spec.fields(),
                "pad_token_id": 0, "source_names": ["dialogue"], "latent_dim": d}
    with CacheBuild(folder, manifest) as build:
        w = build.split_writer("dialogue", "train", n)
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
                for r, (line, arrays) in enumerate(npy_rows(chunk, spec)):
                    w.write(line, "dialogue")
                    w.write_row(start + r, arrays)
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
            got = sum(len(b["index"]) for b in it)
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


def bench_preprocess(quick: bool, rounds: int = 3) -> list[tuple[str, str, float, float]]:
    """Encode throughput with a random ModernBERT + the segment-pooling compressor; sorted and unsorted
    runs alternate and the median of `rounds` is kept (the machine is shared and noisy)."""
    import torch
    from transformers import ModernBertConfig, ModernBertModel
    from transformers.utils import logging as hf_logging

    from latentbridge.data.corpus import dialogue_rows, pretrain_rows
    from latentbridge.data.preprocess import _tokenize, encode_batched
    from latentbridge.models.encoder import SegmentPoolCompressor

    hf_logging.set_verbosity_error()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
    from conftest import make_tokenizer  # a WordLevel tokenizer trained on the bundled corpus

    tok = make_tokenizer()
    texts = [r["dialogue"] for r in dialogue_rows(0)["train"]] + [r["text"] for r in pretrain_rows(0)["wikitext"]]
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.permutation(len(texts))[: (256 if quick else 1024)]]
    seqs = _tokenize(tok, texts, 128)
    shapes = {"tiny (hidden 64, 2 layers)": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                 num_attention_heads=4),
              "small (hidden 256, 4 layers)": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                                   num_attention_heads=4)}
    rows = []
    for name, kw in shapes.items():
        torch.manual_seed(0)
        cfg = ModernBertConfig(vocab_size=len(tok), pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2,
                               sep_token_id=3, max_position_embeddings=512, local_attention=64,
                               global_attn_every_n_layers=2, attn_implementation="sdpa", **kw)
        model = ModernBertModel(cfg).eval()
        comp = SegmentPoolCompressor(kw["hidden_size"], 64, 8, True)

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--k", type=int, default=8, help="latents per record (latent_seq_len)")
    ap.add_argument("--d", type=int, default=256, help="latent_dim")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-preprocess", action="store_true")
    ap.add_argument("--skip-reads", action="store_true")
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


if __name__ == "__main__":
    main()
