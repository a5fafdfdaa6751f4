"""The tiny preset's offline assets: the bundled corpus and tiny models, built once under one root.

    root/data/samsum/*.jsonl, root/data/pretrain/*.jsonl    (latentbridge.data.corpus.write_corpus)
    root/models/modernbert, root/models/gemma3              (latentbridge.models.tiny, save_pretrained folders)

Each of data/, models/modernbert, models/gemma3 is built in a temporary folder beside it and renamed
into place, so a folder that exists is complete; a folder built from another seed is rebuilt.
Safe to call from several processes at once: the first rename wins, the others discard their copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from latentbridge.data.corpus import corpus_texts, write_corpus
from latentbridge.models.loading import quiet_transformers
from latentbridge.models.memory import published_config
from latentbridge.models.tiny import (TINY_LM_STEPS, build_random_gemma3, build_random_modernbert, build_tiny_gemma3,
                                      build_tiny_modernbert)

ASSETS_VERSION = 3
MANIFEST = "latentbridge_tiny.json"


@dataclass(frozen=True)
class TinyAssets:
    root: Path
    data_dir: Path
    encoder_dir: Path
    decoder_dir: Path


def _is_current(folder: Path, manifest: dict) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def _build_atomically(folder: Path, manifest: dict, build: Callable[[Path], None]) -> None:
    if _is_current(folder, manifest):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        build(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        if folder.exists():  # stale (other seed/version, or no manifest): move it aside first
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _is_current(folder, manifest):  # another process won the race with the same content
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_tiny_assets(root: Path, seed: int = 0, lm_steps: Optional[int] = None) -> TinyAssets:
    """Write the corpus, then train the tokenizers on it and save the tiny models; idempotent.
    `lm_steps`: language-model warm-up steps of the tiny decoder (default TINY_LM_STEPS; tests use fewer)."""
    root = Path(root)
    assets = TinyAssets(root, root / "data", root / "models" / "modernbert", root / "models" / "gemma3")
    base = {"seed": seed, "version": ASSETS_VERSION}
    _build_atomically(assets.data_dir, base, lambda tmp: write_corpus(tmp, seed))

    steps = TINY_LM_STEPS if lm_steps is None else lm_steps
    decoder_manifest = {**base, "lm_steps": steps}
    if _is_current(assets.encoder_dir, base) and _is_current(assets.decoder_dir, decoder_manifest):
        return assets

    quiet_transformers()
    texts = corpus_texts(seed)
    _build_atomically(assets.encoder_dir, base, lambda tmp: build_tiny_modernbert(texts, tmp, seed))
    _build_atomically(assets.decoder_dir, decoder_manifest,
                      lambda tmp: build_tiny_gemma3(texts, tmp, seed, lm_steps=steps))
    return assets


def ensure_random_published_assets(root: Path, seed: int = 0, encoder: str = "answerdotai/ModernBERT-base",
                                   decoder: str = "google/gemma-3-270m-it") -> TinyAssets:
    """The bundled corpus and random-weight models of the published `encoder` and `decoder` architectures
    (models/memory.published_config), tokenizers of their vocabulary sizes, under root; idempotent. The real-size
    path, run offline (bench/real_size.py, bench/bench_gpu.py): real shapes and costs, meaningless outputs."""
    root = Path(root)
    enc_cfg, dec_cfg = published_config(encoder), published_config(decoder)
    if enc_cfg is None or dec_cfg is None:
        raise ValueError(f"no published config for {encoder if enc_cfg is None else decoder!r}")
    models = root / "models"
    assets = TinyAssets(root, root / "data", models / f"{encoder.split('/')[-1]}-random",
                        models / f"{decoder.split('/')[-1]}-random")
    base = {"seed": seed, "version": ASSETS_VERSION}
    _build_atomically(assets.data_dir, base, lambda tmp: write_corpus(tmp, seed))
    quiet_transformers()
    texts = corpus_texts(seed)
    _build_atomically(assets.encoder_dir, {**base, "model": encoder},
                      lambda tmp: build_random_modernbert(texts, tmp, seed, enc_cfg))
    _build_atomically(assets.decoder_dir, {**base, "model": decoder},
                      lambda tmp: build_random_gemma3(texts, tmp, seed, dec_cfg))
    return assets
