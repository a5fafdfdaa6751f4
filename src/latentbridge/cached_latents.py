"""The latent cache a Config asks for: reused when complete and current, else built with the frozen encoder.

    ensure_cache(config, progress)             -> BuildResult (the Cache, and whether it was reused)
    load_cache_encoder_state(cache, encoder)   put the compressor the latents came from into a model

The compressor (segment pooling + projection) is initialised from `seed`, used to encode, and saved in
the cache as `encoder_state.safetensors`; a model trained on cached latents must load it from there.
`--mode preprocess` and `--mode train` both get their cache here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from latentbridge import recipe
from latentbridge.config import Config
from latentbridge.data.cache import Cache
from latentbridge.data.encoding import BuildResult, Shards, Tokenizers, build_cache
from latentbridge.data.build_progress import NullProgress, Progress
from latentbridge.data.sources import load_collection
from latentbridge.errors import UserError
from latentbridge.files import REFUSED_WRITES
from latentbridge.models.backends import autocast
from latentbridge.models.decoder import target_end_id
from latentbridge.models.encoder import LatentEncoder, load_encoder_backbone
from latentbridge.models.pretrained import load_pretrained
from latentbridge.models.seeding import seeded
from latentbridge.models.runtime import log_notes, resolve_runtime
from latentbridge.models.specs import Runtime

ENCODER_STATE = "encoder_state.safetensors"


def load_encode(c: Config, runtime: Runtime, encoder_state: Optional[Path] = None) -> tuple[Tokenizers, Callable, Any]:
    """(tokenizers, encode function, the LatentEncoder) for preprocessing, frozen, on runtime.device."""
    device, dtype = runtime.device, runtime.compute_dtype
    allow_download = recipe.runtime_spec(c, runtime).allow_download
    espec = recipe.encoder_spec(c)
    backbone, enc_tok = load_encoder_backbone(espec, runtime.attn_implementation, allow_download, runtime.weight_dtype)
    encoder = seeded(c.seed, lambda: LatentEncoder(backbone, enc_tok, espec))  # the compressor's init: the seed only
    if encoder_state is not None:
        encoder.load_state_dict(load_file(str(encoder_state)), strict=False)
    encoder.eval().requires_grad_(False).to(device)
    dspec = recipe.decoder_spec(c)
    dec_tok = load_pretrained(AutoTokenizer, dspec.model, dspec.model_field, "tokenizer", allow_download)

    def encode(input_ids, attention_mask):
        with autocast(device, dtype):
            return encoder(input_ids.to(device), attention_mask.to(device))

    return Tokenizers(enc_tok, dec_tok, target_end_id(dec_tok)), encode, encoder


def _save_encoder_state(encoder: Any, folder: Path) -> None:
    state = {f"compressor.{k}": v.detach().contiguous().cpu() for k, v in encoder.compressor.state_dict().items()}
    save_file(state, str(folder / ENCODER_STATE))


def load_cache_encoder_state(cache: Cache, encoder: Any) -> None:
    """Load the compressor the cached latents were made with into `encoder` (a LatentEncoder)."""
    path = cache.folder / ENCODER_STATE
    try:
        state = load_file(str(path))
    except Exception as e:
        raise UserError(f"Cannot read {path} ({e}); preprocess again.") from e
    try:
        encoder.load_state_dict(state, strict=False)
    except RuntimeError as e:  # other shapes: a cache of other settings, or a damaged file
        raise UserError(f"The compressor in {path} does not fit this model ({str(e).strip().splitlines()[-1].strip()}); "
                        "preprocess again (--no-skip-preprocessing-if-cached).") from None


def process_shards(runtime: Runtime) -> Shards:
    """This process's share of a cache build: its rank among the processes of torchrun / accelerate launch (the
    process group accelerate sets up, gloo on a CPU run), or the only one under plain python."""
    state = PartialState(cpu=runtime.device_type == "cpu")
    if state.num_processes == 1:
        return Shards()
    return Shards(state.process_index, state.num_processes, state.wait_for_everyone, _from_rank0)


def _from_rank0(value: Any) -> Any:
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def ensure_cache(c: Config, progress: Optional[Progress] = None, *, reuse: Optional[bool] = None,
                 encoder_state: Optional[Path] = None, log: Callable[[str], None] = print,
                 allow_build: bool = True, shards: Optional[Shards] = None,
                 runtime: Optional[Runtime] = None) -> BuildResult:
    """The complete cache for `c` (after `recipe.with_tiny_assets`, which this repeats for the tiny preset):
    reused when `skip_preprocessing_if_cached` and intact, else built (unless `allow_build` is off: then a
    missing cache is a UserError). `progress` shows the build.
    Under several processes every rank calls this: each encodes its share (`process_shards`), rank 0
    reports and merges. `runtime`: the one the mode resolved (default: resolved here from `c`, its notes logged)."""
    c = recipe.with_tiny_assets(c, log, progress)  # a no-op when the caller has put them in place already
    runtime = runtime or _resolved(c)
    shards = process_shards(runtime) if shards is None else shards
    if shards.rank != 0:
        progress, log = NullProgress(), _silent
    cols = recipe.collections(c)
    dspec = recipe.data_spec(c, cols)
    loaded: dict[str, Any] = {}
    on_rank = runtime.on(str(PartialState().device)) if shards.count > 1 and runtime.device_type != "cpu" else runtime

    def load_model():
        tok, encode, encoder = load_encode(c, on_rank, encoder_state)
        loaded["encoder"] = encoder
        return tok, encode

    def before_commit(folder: Path) -> None:
        _save_encoder_state(loaded["encoder"], folder)

    try:
        return build_cache(
            Path(c.preprocess_cache_dir), recipe.cache_fingerprint_parts(c, runtime, cols, encoder_state),
            lambda: {col: load_collection(dspec, col) for col in cols}, load_model, recipe.cache_spec(c),
            reuse=(c.skip_preprocessing_if_cached or not allow_build) if reuse is None else reuse,
            progress=progress or NullProgress(), log=log, before_commit=before_commit, allow_build=allow_build,
            shards=shards)
    except OSError as error:
        if error.errno not in REFUSED_WRITES:
            raise
        raise UserError(f"Cannot write the latent cache under preprocess_cache_dir {c.preprocess_cache_dir} "
                        f"(--preprocess-cache-dir): {error.strerror}. The unfinished build was removed and the "
                        "caches already there are intact; free some space or choose another "
                        "--preprocess-cache-dir, then run again.") from None


def _silent(message: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the build."""


def _resolved(c: Config) -> Runtime:
    """The runtime of a cache build that was not handed one (tests, the Python API): resolved once, here."""
    runtime = resolve_runtime(recipe.runtime_request(c))
    log_notes(runtime)
    return runtime
