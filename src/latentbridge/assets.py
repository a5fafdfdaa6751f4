"""The tiny preset's offline assets: a corpus and tiny models, built once under one root.

    root/data/samsum/*.jsonl, root/data/pretrain/*.jsonl    the bundled corpus (latentbridge.data.corpus)
    root/models/modernbert, root/models/gemma3              tiny models whose tokenizers and LM warm-up
                                                            come from the bundled corpus
    root/corpora/<fingerprint>/models/{modernbert,gemma3}   the same, built from another corpus (a user's
                                                            dataset): one folder per corpus fingerprint
    root/corpora/<fingerprint>/corpus.json                  what that corpus was (for people, not code)

The fingerprint hashes the texts the models are built from, with the seed, the warm-up steps and the sizes:
the same corpus finds its models again, another corpus gets its own folder (and checkpoints, which hash
their backbone folders, refuse models of another corpus). Each model folder and data/ is built in a
temporary folder beside it and renamed into place, so a folder that exists is complete; a folder built with
other settings is rebuilt. Safe from several processes: the first rename wins, the others discard their copy.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from latentbridge.data.corpus import corpus_paths, corpus_texts, write_corpus
from latentbridge.data.build_progress import NullProgress
from latentbridge.files import write_text_atomic
from latentbridge.locks import build_folder_once
from latentbridge.models.pretrained import quiet_transformers
from latentbridge.models.memory import published_config
from latentbridge.models.tiny import (TINY_HIDDEN, TINY_LM_STEPS, TINY_VOCAB_SIZE, build_random_gemma3,
                                      build_random_modernbert, build_tiny_gemma3, build_tiny_modernbert)

ASSETS_VERSION = 3
# The shared tiny assets stand in for pretrained backbones, which do not change with a run's --seed: built from
# this seed whatever a run's, so a run with another seed never rebuilds (and so never removes) the folder that
# a concurrent run is reading (issue 20). A user's corpus keys its models by fingerprint, seed included.
SHARED_ASSETS_SEED = 0
MANIFEST = "latentbridge_tiny.json"
CORPORA = "corpora"
FINGERPRINT_CHARS = 16
BUILD_WAIT_S = 3600.0  # a second builder waits for the first (the decoder's LM warm-up takes minutes) and reuses it
# A user's corpus is real text. Measured on docstrings (docs/benchmarks.md, issue 9): a 4096-token vocabulary
# cuts 2.9 encoder tokens a word to 2.0, and with 1000 LM warm-up steps instead of 300 (both changed at once)
# the direct baseline went from 8.5 to 12.8 ROUGE-L and the latent path from 7.0 to 9.7.
CORPUS_VOCAB_SIZE = 4096
CORPUS_LM_STEPS = 1000


@dataclass(frozen=True)
class TinyAssets:
    root: Path
    data_dir: Optional[Path]  # the bundled corpus; None for models built from another corpus
    encoder_dir: Path
    decoder_dir: Path


def bundled_paths(root: Path) -> dict[str, Path]:
    """Where the bundled assets live under `root`: dataset, wikitext, arxiv, english, encoder, decoder."""
    root = Path(root)
    return {**corpus_paths(root / "data"), "encoder": root / "models" / "modernbert",
            "decoder": root / "models" / "gemma3"}


def is_under(location: str, folder: Path) -> bool:
    return Path(folder).resolve() in Path(location).expanduser().resolve().parents


def _is_current(folder: Path, manifest: dict) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def _build_atomically(folder: Path, manifest: dict, build: Callable[[Path], None]) -> None:
    """`folder` built by `build(tmp)` with `manifest` beside it, unless it is current (another seed or version,
    or no manifest, is rebuilt)."""

    def build_with_manifest(tmp: Path) -> None:
        build(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest))

    build_folder_once(folder, lambda f: _is_current(f, manifest), build_with_manifest, f"the tiny assets {folder}",
                      BUILD_WAIT_S)


@dataclass(frozen=True)
class ModelSizes:
    """What tiny models are built with: tokenizer vocabulary, hidden sizes, LM warm-up steps of the decoder."""

    vocab_size: int
    encoder_hidden: int
    decoder_hidden: int
    lm_steps: int


def bundled_sizes(lm_steps: Optional[int] = None) -> ModelSizes:
    return ModelSizes(TINY_VOCAB_SIZE, TINY_HIDDEN, TINY_HIDDEN, TINY_LM_STEPS if lm_steps is None else lm_steps)


def _build_models(assets: "TinyAssets", texts: Callable[[], Sequence[str]], manifests: tuple[dict, dict], seed: int,
                  sizes: ModelSizes, progress: Any) -> None:
    """Train the tokenizers on `texts()` and save the tiny encoder and the LM-warmed tiny decoder (when stale)."""
    if _is_current(assets.encoder_dir, manifests[0]) and _is_current(assets.decoder_dir, manifests[1]):
        return

    quiet_transformers()
    corpus = texts()
    progress.start(f"tiny encoder: tokenizer on {len(corpus):,} texts", 1)
    _build_atomically(assets.encoder_dir, manifests[0], lambda tmp: build_tiny_modernbert(
        corpus, tmp, seed, vocab_size=sizes.vocab_size, hidden=sizes.encoder_hidden))
    progress.advance(1)
    progress.finish()
    progress.start(f"tiny decoder: tokenizer, then {sizes.lm_steps} LM warm-up steps", sizes.lm_steps + 1)
    _build_atomically(assets.decoder_dir, manifests[1], lambda tmp: build_tiny_gemma3(
        corpus, tmp, seed, lm_steps=sizes.lm_steps, vocab_size=sizes.vocab_size, hidden=sizes.decoder_hidden,
        on_step=lambda loss: progress.advance(1)))
    progress.advance(1)
    progress.finish()


def ensure_bundled_corpus(root: Path, seed: int = 0) -> Path:
    """root/data: the bundled corpus, written when missing or from another seed; returns the folder."""
    folder = Path(root) / "data"
    _build_atomically(folder, {"seed": seed, "version": ASSETS_VERSION}, lambda tmp: write_corpus(tmp, seed))
    return folder


def ensure_tiny_assets(root: Path, seed: int = 0, lm_steps: Optional[int] = None,
                       progress: Any = None) -> TinyAssets:
    """Write the bundled corpus, then train the tokenizers on it and save the tiny models; idempotent.
    `lm_steps`: language-model warm-up steps of the tiny decoder (default TINY_LM_STEPS; tests use fewer)."""
    root = Path(root)
    paths = bundled_paths(root)
    assets = TinyAssets(root, ensure_bundled_corpus(root, seed), paths["encoder"], paths["decoder"])
    sizes = bundled_sizes(lm_steps)
    _build_models(assets, lambda: corpus_texts(seed), _bundled_manifests(seed, sizes), seed, sizes,
                  progress or NullProgress())
    return assets


def _bundled_manifests(seed: int, sizes: ModelSizes) -> tuple[dict, dict]:
    base = {"seed": seed, "version": ASSETS_VERSION}
    return base, {**base, "lm_steps": sizes.lm_steps}


def tiny_models_ready(root: Path, seed: int = 0) -> bool:
    """Whether the bundled tiny models under `root` are built (else the first use builds them, ~15 s)."""
    paths, manifests = bundled_paths(Path(root)), _bundled_manifests(seed, bundled_sizes())
    return _is_current(paths["encoder"], manifests[0]) and _is_current(paths["decoder"], manifests[1])


def corpus_fingerprint(texts: Sequence[str], settings: dict) -> str:
    """sha256 of the texts (in order) and the build settings: names the folder of a corpus' models."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for text in texts:
        h.update(text.encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()


def corpus_folder(root: Path, texts: Sequence[str], sizes: ModelSizes, seed: int = 0) -> Path:
    """root/corpora/<fingerprint>: where ensure_corpus_assets builds (or finds) the tiny models of `texts`."""
    settings = {"seed": seed, "version": ASSETS_VERSION, **asdict(sizes)}
    return Path(root) / CORPORA / corpus_fingerprint(texts, settings)[:FINGERPRINT_CHARS]


def ensure_corpus_assets(root: Path, texts: Sequence[str], sizes: ModelSizes, seed: int = 0, progress: Any = None,
                         describe: Optional[dict] = None) -> TinyAssets:
    """Tiny models whose tokenizers and decoder warm-up come from `texts` (a user's corpus), under
    root/corpora/<fingerprint>; reused when that corpus' models exist. `describe` goes into corpus.json."""
    if not texts:
        raise ValueError("no texts to build tiny models from")
    settings = {"seed": seed, "version": ASSETS_VERSION, **asdict(sizes)}
    key = corpus_fingerprint(texts, settings)
    folder = corpus_folder(root, texts, sizes, seed)
    assets = TinyAssets(folder, None, folder / "models" / "modernbert", folder / "models" / "gemma3")
    manifest = {**settings, "corpus": key}
    started = time.perf_counter()
    _build_models(assets, lambda: texts, (manifest, manifest), seed, sizes, progress or NullProgress())
    info = folder / "corpus.json"
    if not info.exists():
        write_text_atomic(info, json.dumps({"fingerprint": key, "texts": len(texts), **(describe or {}),
                                            "build_seconds": round(time.perf_counter() - started, 1)}, indent=2))
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
    assets = TinyAssets(root, ensure_bundled_corpus(root, seed), models / f"{encoder.split('/')[-1]}-random",
                        models / f"{decoder.split('/')[-1]}-random")
    base = {"seed": seed, "version": ASSETS_VERSION}
    quiet_transformers()
    texts = corpus_texts(seed)
    _build_atomically(assets.encoder_dir, {**base, "model": encoder},
                      lambda tmp: build_random_modernbert(texts, tmp, seed, enc_cfg))
    _build_atomically(assets.decoder_dir, {**base, "model": decoder},
                      lambda tmp: build_random_gemma3(texts, tmp, seed, dec_cfg))
    return assets
