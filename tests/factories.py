"""Helpers shared across the suite: configs, small specs and models, fakes. Fixtures live in conftest files,
helpers only here (tests import nothing from conftest files or from each other)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import struct
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from latentbridge import recipe
from latentbridge.config import Config, preset_config
from latentbridge.data.corpus import corpus_paths, corpus_texts
from latentbridge.data.encoding import CacheSpec, Shards, Tokenizers
from latentbridge.data.sources import DataSpec, PretrainSource
from latentbridge.models.bridge import LatentBridge, build_model
from latentbridge.models.runtime import resolve_runtime
from latentbridge.models.specs import AdapterSpec, DecoderSpec, EncoderSpec, MiddleSpec, ModelSpec, RuntimeSpec
from latentbridge.training.checkpoint import (AsyncCheckpointer, ConfigFingerprint, TrainState, config_fingerprint,
                                             write_model_file)

# ------------------------------------------------------------------------------------------ configs

def tiny_config(**overrides: Any) -> Config:
    """The `tiny` preset with `overrides`: CPU, small dims, local models and data."""
    return preset_config("tiny", **overrides)


def assets_config(root: Path, **overrides: Any) -> Config:
    """The tiny preset pointed at tiny assets under `root` (absolute paths: tests never depend on the cwd)."""
    paths = {
        "tiny_assets_dir": str(root), "modernbert_model": str(root / "models" / "modernbert"),
        "gpt2_model": str(root / "models" / "gemma3"), "dataset_name": str(root / "data" / "samsum"),
        "wikitext_dataset": str(root / "data" / "pretrain" / "wikitext.jsonl"),
        "arxiv_dataset": str(root / "data" / "pretrain" / "arxiv.jsonl"),
        "english_pretrain_dataset": str(root / "data" / "pretrain" / "english.jsonl"),
    }
    return tiny_config(**{**paths, **overrides})


def link_tiny_assets(folder: Path, root: Path) -> None:
    """Make `folder/cache/tiny` (where the tiny preset builds its assets) hold the assets under `root`, so
    the preset's relative paths work in `folder` without building them again."""
    (folder / "cache" / "tiny").mkdir(parents=True, exist_ok=True)
    for part in ("data", "models"):
        (folder / "cache" / "tiny" / part).symlink_to(root / part)


def small_corpus_config(root: Path, tmp: Path, **overrides: Any) -> Config:
    """The tiny preset's shared models over the cut-down corpus of the `small_root` fixture, its cache under `tmp`:
    builds in seconds. tiny_assets_dir none: the models stay as they are (a corpus of its own would get its own)."""
    small = root / "small"
    return assets_config(root, **{"tiny_assets_dir": None,
        "dataset_name": str(small / "samsum"), "wikitext_dataset": str(small / "pretrain/wikitext.jsonl"),
        "arxiv_dataset": str(small / "pretrain/arxiv.jsonl"),
        "english_pretrain_dataset": str(small / "pretrain/english.jsonl"), "preprocess_cache_dir": str(tmp / "cache"),
        "max_train_samples": 48, "pretrain_middle_max_samples": 60, "pretrain_adapter_max_samples": 30,
        "use_tui": False, **overrides})


def train_config(root: Path, tmp: Path, **overrides: Any) -> Config:
    """`--mode train` at small caps over the tiny assets: four one-epoch stages over 32 examples in batches
    of 8 (16 steps), everything written under `tmp`."""
    return assets_config(
        root, preprocess_cache_dir=str(tmp / "cache"), checkpoint_dir=str(tmp / "ckpt"), output_dir=str(tmp / "run"),
        max_train_samples=32, pretrain_middle_max_samples=32, pretrain_adapter_max_samples=32, batch_size=8,
        save_every=3, log_every=2, pretrain_middle_epochs=1, pretrain_adapter_epochs=1, finetune_middle_epochs=1,
        finetune_adapter_epochs=1, use_tui=False, **overrides)


# ------------------------------------------------------------------------------------------ models

TINY_DIM, TINY_K, TINY_P = 32, 4, 6  # latent_dim, latent_seq_len, prefix_len of `tiny_spec`

DIALOGUES = ["Anna: are we still on for lunch at one? Ben: sure, see you at the cafe.",
             "Tom: I lost my keys again. Mia: check the kitchen drawer.",
             "Sue: party on Friday at my place! Joe: great, I will bring snacks.",
             "Max: hi"]
SUMMARIES = ["Anna and Ben will have lunch at one at the cafe.",
             "Tom lost his keys; Mia suggests the kitchen drawer.",
             "Sue hosts a party on Friday and Joe brings snacks.",
             "Max says hi."]


def tiny_spec(assets: Any, **sections: dict[str, Any]) -> ModelSpec:
    """A small ModelSpec over the tiny assets (latentbridge.assets.TinyAssets); `middle={"layers": 1}` etc.
    override one section's fields."""
    spec = ModelSpec(
        encoder=EncoderSpec(model=str(assets.encoder_dir), latent_dim=TINY_DIM, latent_seq_len=TINY_K,
                            unfrozen_layers=1),
        middle=MiddleSpec(latent_dim=TINY_DIM, latent_seq_len=TINY_K, layers=2, num_heads=4, ffn_multiplier=2.0,
                          dropout=0.0),
        adapter=AdapterSpec(latent_dim=TINY_DIM, prefix_len=TINY_P, num_heads=4, dropout=0.0),
        decoder=DecoderSpec(model=str(assets.decoder_dir), unfrozen_layers=1),
        runtime=RuntimeSpec(),  # the default Runtime: cpu, fp32, sdpa
    )
    changes = {name: dataclasses.replace(getattr(spec, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(spec, **changes)


CHATML_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                   "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def family_tokenizer(assets: Any, role: str, chat: Optional[str]) -> Any:
    """The tiny assets' tokenizer of `role`; for a decoder with the chat format `chat`: "gemma" (its own template),
    "chatml" (SmolLM2's and Qwen's <|im_start|> ... <|im_end|>, two tokens added) or None (no template)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.encoder_dir if role == "encoder" else assets.decoder_dir)
    if role == "decoder" and chat == "chatml":
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tok.chat_template = CHATML_TEMPLATE
    elif role == "decoder" and chat is None:
        tok.chat_template = None
    return tok


def build_family_folder(assets: Any, model_type: str, role: str, out_dir: Path, chat: Optional[str] = "gemma") -> Path:
    """A tiny random `model_type` backbone (models/tiny.py's builder) over the tiny assets' tokenizer, saved in
    out_dir as a model folder."""
    from latentbridge.models.tiny import build_tiny_backbone

    build_tiny_backbone(model_type, role, family_tokenizer(assets, role, chat), out_dir, seed=0, hidden=32, heads=2)
    return out_dir


def make_model(assets: Any, seed: int = 0, **sections: dict[str, Any]) -> LatentBridge:
    """A LatentBridge of `tiny_spec`, its small parts drawn after `torch.manual_seed(seed)`."""
    torch.manual_seed(seed)
    return build_model(tiny_spec(assets, **sections))


@dataclass(frozen=True)
class Handoff:
    config: Config  # the config saved in the file (paths into the temporary folder)
    path: Path      # checkpoint_dir / handoff_best_model_filename


def write_handoff(config: Config, model: Any = None, seed: int = 0, stage: str = "init") -> Path:
    """Save `model` (default: a fresh tiny model for `config`) as the hand-off model file of `config`, through
    the training checkpoint format: infer and eval are tested end to end without training."""
    if model is None:
        torch.manual_seed(seed)
        model = build_model(recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config))))
    path = Path(config.checkpoint_dir) / config.handoff_best_model_filename
    return write_model_file(path, model.trainable_state_dict(), config=config.to_dict(),
                            fingerprint=recipe.checkpoint_fingerprint(config), step=0, stage=stage)


# ------------------------------------------------------------------------------------------ data fakes

FAKE_DIM, FAKE_K = 16, 4  # latent size and slots of `FakeEncoder`


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer trained on the bundled corpus ([CLS] text [SEP], <eos>)."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<eos>"]
    tok.train_from_iterator(corpus_texts(0), trainers.WordLevelTrainer(special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", eos_token="<eos>")


class FakeEncoder:
    """Deterministic stand-in for encoder + compressor: embed, mean-pool FAKE_K contiguous segments."""

    def __init__(self, vocab: int, dim: int = FAKE_DIM, k: int = FAKE_K):
        g = torch.Generator().manual_seed(0)
        self.table = torch.randn(vocab, dim, generator=g)
        self.k = k
        self.calls: list[tuple[int, int]] = []  # (batch, padded length) per call

    def __call__(self, input_ids, attention_mask):
        self.calls.append(tuple(input_ids.shape))
        x = self.table[input_ids] * attention_mask[..., None]  # (B, T, D)
        b, t, d = x.shape
        seg = torch.clamp((torch.arange(t)[None, :] * self.k) // attention_mask.sum(1, keepdim=True).clamp(min=1),
                          max=self.k - 1)  # (B, T) segment of each position
        onehot = torch.nn.functional.one_hot(seg, self.k).float() * attention_mask[..., None]  # (B, T, K)
        pooled = onehot.transpose(1, 2) @ x / onehot.sum(1)[..., None].clamp(min=1)  # (B, K, D)
        return pooled


def corpus_data_spec(corpus_dir: Path, **overrides: Any) -> DataSpec:
    """A DataSpec over a corpus written by latentbridge.data.corpus.write_corpus."""
    p = corpus_paths(corpus_dir)
    base = dict(dataset=str(p["dataset"]),
                pretrain=tuple(PretrainSource(n, str(p[n]), f"{n}_dataset") for n in ("wikitext", "arxiv", "english")),
                hf_cache_dir=str(corpus_dir / ".hf"))
    base.update(overrides)
    return DataSpec(**base)


def small_cache_spec(**overrides: Any) -> CacheSpec:
    return CacheSpec(**{"max_seq_len": 64, "max_target_len": 24, "batch_size": 16, **overrides})


def fake_tokenizers(tok: Any) -> Tokenizers:
    """The same tokenizer for encoder and decoder."""
    return Tokenizers(encoder=tok, decoder=tok)


def thread_shards(count: int, timeout: float = 60.0) -> tuple[list[Shards], threading.Barrier]:
    """`count` ranks of one cache build as threads of this process: a Barrier stands in for the process
    group (abort it to fail the others, as torchrun stops the other ranks when one dies)."""
    barrier = threading.Barrier(count, timeout=timeout)
    box: dict[str, Any] = {}

    def share_as(rank: int):
        def share(value: Any) -> Any:
            if rank == 0:
                box["value"] = value
            barrier.wait()
            out = box["value"]
            barrier.wait()  # every rank has read it before rank 0 may put the next one
            return out
        return share

    return [Shards(rank, count, barrier.wait, share_as(rank)) for rank in range(count)], barrier


# ------------------------------------------------------------------------------------------ checkpoints

def tiny_fingerprint() -> ConfigFingerprint:
    """The fingerprint the checkpoint tests save under."""
    return config_fingerprint({"latent_dim": 8, "prefix_len": 2})


def tiny_train_state(step: int = 0, stage: str = "pretrain_middle") -> TrainState:
    """A TrainState around a seeded nn.Linear(4, 3): a small model whose weights differ per step."""
    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    return TrainState(stage=stage, model=model.state_dict(), loop={"epoch": 0, "batch": step}, config={"latent_dim": 8})


def tiny_checkpointer(root: Path, **kw: Any) -> AsyncCheckpointer:
    """An AsyncCheckpointer writing to `root`/ckpt under tiny_fingerprint() unless `fingerprint` is given."""
    kw.setdefault("fingerprint", tiny_fingerprint())
    return AsyncCheckpointer(root / "ckpt", **kw)


def names_in(directory: Path) -> list[str]:
    """The sorted names of the entries in `directory`."""
    return sorted(p.name for p in directory.iterdir())


def cache_folders(root: Path) -> list[str]:
    """The sorted names in a preprocess_cache_dir, less the builders' lock files (kept, as flock files are)."""
    return [name for name in names_in(root) if not name.startswith(".lock-")]


# ------------------------------------------------------------------------------------------ processes

MAIN = Path(__file__).resolve().parents[1] / "main.py"
_HOOKED_MAIN = """
import sys
sys.argv = ["main.py", *sys.argv[1:]]
{hook}
from latentbridge.cli import main
main()
"""


def run_main_with_hook(hook: str, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python main.py *args` in a fresh process that first runs `hook`: Python source that wraps the writer it
    targets (to kill or stop the process at a chosen moment of a write, or to make it fail), never a sleep."""
    return subprocess.run([sys.executable, "-c", _HOOKED_MAIN.format(hook=textwrap.dedent(hook)), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def hook_nth_call(target: str, n: int, action: str) -> str:
    """Hook source: on the `n`-th call of `target` ("module:Class.method" or "module:function"), run `action`
    (Python source that sees the call's `args`) before the call itself."""
    module, name = target.split(":")
    owner, _, attribute = name.rpartition(".")
    return f"""
import importlib, os, signal
_module = importlib.import_module({module!r})
_owner = getattr(_module, {owner!r}) if {owner!r} else _module
_original = getattr(_owner, {attribute!r})
_calls = [0]
def _hooked(*args, **kwargs):
    _calls[0] += 1
    if _calls[0] == {n}:
{textwrap.indent(textwrap.dedent(action).strip(), " " * 8)}
    return _original(*args, **kwargs)
setattr(_owner, {attribute!r}, _hooked)
"""


def namespace_with_tmpfs_available() -> bool:
    """Whether this machine lets an unprivileged process mount a tmpfs in its own namespace (`unshare -rm`)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def run_on_small_tmpfs(mountpoint: Path, size: str, script: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the shell `script` in a user and mount namespace where `mountpoint` is a fresh tmpfs of `size`
    (e.g. "64k"): a real full disk, gone with the process."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    command = f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mountpoint))} && {script}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


# ------------------------------------------------------------------------------------------ trackers

WANDB_BLOCK = 32768  # the LevelDB log format of W&B's .wandb files: 32 KiB blocks of (crc, length, kind) records


def read_wandb_records(path: Path) -> list[bytes]:
    """The serialized records of a W&B run file (`run-*.wandb`). wandb no longer ships a Python reader (its Go
    core writes the file), so this follows the format: a 7-byte header, then per block records with a 7-byte
    header (crc32, length, kind: 1 whole, 2 first, 3 middle, 4 last piece), zero padding at a block's end."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, records, pending = 7, [], b""
    while pos + 7 <= len(data):
        space = WANDB_BLOCK - pos % WANDB_BLOCK
        kind = struct.unpack("<IHB", data[pos:pos + 7])[2] if space >= 7 else 0
        if kind == 0:  # the rest of the block is padding
            pos += space
            continue
        length = struct.unpack("<IHB", data[pos:pos + 7])[1]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind == 2 else pending + chunk if kind == 3 else pending
        if kind in (1, 4):
            records.append(chunk if kind == 1 else pending + chunk)
            pending = b""
    return records


def save_image_text_gemma3(decoder_dir: Path, out_dir: Path) -> Path:
    """The tiny Gemma 3 decoder in `decoder_dir` as the language model of a Gemma3ForConditionalGeneration (the
    class of gemma-3-4b and larger) with a small random vision tower, saved with its tokenizer into `out_dir`."""
    from transformers import (AutoTokenizer, Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration,
                              SiglipVisionConfig)

    text = Gemma3ForCausalLM.from_pretrained(decoder_dir)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(Gemma3Config(text_config=text.config.to_dict(),
                                                        vision_config=vision.to_dict(), mm_tokens_per_image=4))
    model.model.language_model.load_state_dict(text.model.state_dict())
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(decoder_dir).save_pretrained(out_dir)
    return out_dir


def import_bench(name: str) -> Any:
    """A script of bench/ as a module (the scripts import their sibling `common`)."""
    import importlib
    import sys

    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)
