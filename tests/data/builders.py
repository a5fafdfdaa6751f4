"""Helpers the data tests share: a cache built from the small corpus or from given splits, a docs dataset, JSON Lines."""

from __future__ import annotations

import json

from latentbridge.data.encoding import build_cache
from latentbridge.data.sources import load_collection

from tests.factories import corpus_data_spec, fake_tokenizers, small_cache_spec


DOCS = [{"qualname": f"pkg.f{i}", "body": f"Body number {i} says what f{i} does.", "summary_line": f"Do the useful thing number {i}."}
        for i in range(6)]


def build_from_corpus(root, small_corpus_dir, tok, enc, spec=None, parts=None, collections=("dialogue",), reuse=True, **data):
    ds = corpus_data_spec(small_corpus_dir, **{"dialogue_max_train": 64, "pretrain_max_train": 60, **data})
    return build_cache(root, parts or {"model": "fake"},
                       lambda: {c: load_collection(ds, c) for c in collections},
                       lambda: (fake_tokenizers(tok), enc), spec or small_cache_spec(), reuse=reuse, log=lambda m: None)


def build_from_splits(root, load_splits, tok, enc, spec=None, **kw):
    return build_cache(root, {"model": "fake"}, load_splits, lambda: (fake_tokenizers(tok), enc),
                       spec or small_cache_spec(), log=kw.pop("log", lambda m: None), **kw)


def corpus_splits(small_corpus_dir, **data):
    spec = corpus_data_spec(small_corpus_dir, **{"dialogue_max_train": 64, "pretrain_max_train": 60, **data})
    return lambda: {c: load_collection(spec, c) for c in ("pretrain", "dialogue")}


def docs_folder(tmp_path, rows=DOCS):
    folder = tmp_path / "docs"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
