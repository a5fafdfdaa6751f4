"""Parameter counts and a training-memory estimate without loading (or downloading) any weights.

Backbone sizes come from the local folder's config.json, or the local hub cache, or, for ModernBERT-base and
the Gemma 3 decoders, the published configs written out below; models are then built on the meta device, so
counts are exact and cost no memory. The estimate of a training step's peak adds up what it holds, term by
term: the saved-for-backward bytes of each layer are counted exactly (tests/models/test_memory.py), the
transients of backward and the CPU process were measured; docs/benchmarks.md sets it beside measured peaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, Gemma3TextConfig, ModernBertConfig

from latentbridge.models.adapter import PrefixAdapter
from latentbridge.models.decoder import CE_CHUNK
from latentbridge.models.encoder import SegmentPoolCompressor
from latentbridge.models.families import family, find_layout
from latentbridge.models.pretrained import quiet_transformers
from latentbridge.models.middle import build_middle
from latentbridge.models.specs import MemoryPrecision, ModelSpec, StepShape

GIB = 1024 ** 3


# The text decoders of the Gemma 3 family as published (4b and larger are image-text checkpoints: this is their
# text_config). (hidden, intermediate, layers, heads, kv heads, head dim, query scale, sliding window, vocab, context)
GEMMA3_TEXT = {
    "270m": (640, 2048, 18, 4, 1, 256, 256, 512, 262144, 32768),
    "1b": (1152, 6912, 26, 4, 1, 256, 256, 512, 262144, 32768),
    "4b": (2560, 10240, 34, 8, 4, 256, 256, 1024, 262208, 131072),
    "12b": (3840, 15360, 48, 16, 8, 256, 256, 1024, 262208, 131072),
    "27b": (5376, 21504, 62, 32, 16, 128, 168, 1024, 262208, 131072),
}


def gemma3_text_config(size: str) -> Gemma3TextConfig:
    """The published text architecture of Gemma 3 `size` (a key of GEMMA3_TEXT); 4b and larger scale the global
    layers' RoPE linearly by 8 (their 128k context)."""
    hidden, inter, layers, heads, kv, head_dim, scalar, window, vocab, context = GEMMA3_TEXT[size]
    full = {"rope_type": "default", "rope_theta": 1000000.0}
    if context > 32768:
        full = {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}
    rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}, "full_attention": full}
    return Gemma3TextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                            query_pre_attn_scalar=scalar, sliding_window=window, max_position_embeddings=context,
                            rope_parameters=rope)


def published_config(name: str) -> Optional[Any]:
    """The published architecture of ModernBERT-base and the Gemma 3 text decoders (never downloaded)."""
    if name == "answerdotai/ModernBERT-base":
        # hidden 768, 22 layers, 12 heads, MLP 1152, vocab 50368 (the 5.x defaults are these values)
        return ModernBertConfig(vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22,
                                num_attention_heads=12, local_attention=128, max_position_embeddings=8192)
    match = re.fullmatch(r"google/gemma-3-(\w+?)(-pt|-it)?", name)
    if match and match.group(1) in GEMMA3_TEXT:
        return gemma3_text_config(match.group(1))
    return None


def locate_config(name: str) -> tuple[Optional[Any], str]:
    """(config or None, where it came from): local folder, local hub cache, published, or unknown."""
    quiet_transformers()
    path = Path(name).expanduser()
    if path.exists():
        try:  # an image-text checkpoint (gemma-3-4b and larger): its text part, which is what loads
            return AutoConfig.from_pretrained(str(path), local_files_only=True).get_text_config(), "local folder"
        except (OSError, ValueError):
            return None, "local folder without a readable config.json"
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True).get_text_config(), "local hub cache"
    except (OSError, ValueError):
        pass
    published = published_config(name)
    if published is not None:
        return published, "published config (weights not on this machine)"
    return None, "not found locally (hub not reachable)"


@dataclass(frozen=True)
class PartCount:
    total: int
    trainable: int  # the most that ever trains: top unfrozen layers of a backbone, all of a small part
    top_layers: int = 0  # a backbone's layers among them


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _top_count(model: torch.nn.Module, name: str, role: str, n: int) -> int:
    """Parameters of the top `n` blocks and the final norm of a backbone (found by models/families.py)."""
    if n <= 0:
        return 0
    layout = find_layout(model, name, role)
    blocks = model.get_submodule(layout.blocks)
    norm = 0 if layout.final_norm is None else _count(model.get_submodule(layout.final_norm))
    return sum(_count(m) for m in blocks[len(blocks) - n:]) + norm


def part_counts(spec: ModelSpec, encoder_config: Optional[Any], decoder_config: Optional[Any]
                ) -> dict[str, Optional[PartCount]]:
    """Parameter counts of encoder, compressor, middle, adapter, decoder (None where a config is unknown)."""
    out: dict[str, Optional[PartCount]] = {}
    with torch.device("meta"):
        if encoder_config is not None:
            enc = AutoModel.from_config(encoder_config)
            n = spec.encoder.unfrozen_layers
            out["encoder"] = PartCount(_count(enc), _top_count(enc, spec.encoder.model, "encoder", n), n)
            comp = SegmentPoolCompressor(encoder_config.hidden_size, spec.encoder.latent_dim,
                                         spec.encoder.latent_seq_len, True)
            out["compressor"] = PartCount(_count(comp), _count(comp))
        else:
            out["encoder"] = out["compressor"] = None
        middle = build_middle(spec.middle)
        out["middle"] = PartCount(_count(middle), _count(middle))
        if decoder_config is not None:
            dec = AutoModelForCausalLM.from_config(decoder_config)
            n = spec.decoder.unfrozen_layers
            out["decoder"] = PartCount(_count(dec), _top_count(dec, spec.decoder.model, "decoder", n), n)
            adapter = PrefixAdapter(spec.adapter, decoder_config.hidden_size)
            out["adapter"] = PartCount(_count(adapter), _count(adapter))
        else:
            out["decoder"] = out["adapter"] = None
    return out


# Bytes one backbone layer saves for backward per token, as (H, q, kv, I) coefficients: hidden size, query and
# key/value widths (heads x head_dim), MLP width. Counted with models.checkpointing.SavedForBackward on the
# published Gemma-3-270m and ModernBERT-base layers (bench/bench_memory.py --layers) and matched term by term:
# Gemma 3's RMSNorms upcast their inputs to fp32 (4 norms of H, and the q/k norms), sdpa keeps q, k, v, out,
# GeGLU keeps gate, up and gelu(gate); a trained layer adds its linears' inputs and its norms' outputs.
# "bf16" is autocast over fp32 weights (the residual stream stays fp32), "bf16-weights" the flash-attention
# load (stream in bf16).
_SAVED_PER_TOKEN = {
    "gemma3": {"frozen": {"fp32": (16, 12, 12, 12), "bf16": (16, 8, 8, 6), "bf16-weights": (16, 8, 8, 6)},
               "trained": {"fp32": (24, 4, 4, 4), "bf16": (26, 4, 4, 2), "bf16-weights": (20, 4, 4, 2)}},
    "modernbert": {"frozen": {"fp32": (32, 0, 0, 12), "bf16": (20, 0, 0, 6), "bf16-weights": (16, 0, 0, 6)},
                   "trained": {"fp32": (8, 0, 0, 4), "bf16": (4, 0, 0, 2), "bf16-weights": (4, 0, 0, 2)}},
}
CPU_PROCESS_GIB = 0.5  # RSS of Python + torch + transformers + both real tokenizers before any model (measured)
CPU_RETAINED = 0.3     # glibc keeps freed forward temporaries: RSS after a batch-30 forward was 1.44x the saved bytes
FRAMING_TOKENS = 12    # chat turn markers around the prefix


def _mode(p: MemoryPrecision) -> str:
    return "fp32" if p.compute == "fp32" else "bf16-weights" if p.bf16_weights else "bf16"


# The measured coefficients that stand in for a family without its own (named in the estimate's notes)
STAND_INS = {"encoder": "modernbert", "decoder": "gemma3"}


def coefficients_for(cfg: Any, role: str) -> tuple[str, Optional[str]]:
    """(key of _SAVED_PER_TOKEN, note): the family's measured coefficients, or the stand-in of its role (encoder
    or decoder) with a note saying that this family's were never measured."""
    row = family(cfg.model_type)
    if row is not None and row.memory is not None:
        return row.memory, None
    stand_in = STAND_INS[role]
    return stand_in, (f"{role} activations: no measured coefficients for model_type {cfg.model_type!r}; estimated "
                      f"with {stand_in}'s, so they may be off by more than the 25% measured for {stand_in}")


def mlp_width(cfg: Any) -> int:
    """The MLP's inner width under the names families use (GPT-2's n_inner defaults to 4 x hidden)."""
    for name in ("intermediate_size", "n_inner", "hidden_dim"):
        width = getattr(cfg, name, None)
        if width:
            return int(width)
    return 4 * cfg.hidden_size


def layer_bytes_per_token(cfg: Any, kind: str, p: MemoryPrecision, trained: bool) -> int:
    """What one layer of a `kind` ("gemma3" or "modernbert") backbone saves for backward, per token."""
    H, I = cfg.hidden_size, mlp_width(cfg)
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or H // heads
    q, kv = heads * head_dim, (getattr(cfg, "num_key_value_heads", None) or heads) * head_dim
    coefficients = [_SAVED_PER_TOKEN[kind]["frozen"][_mode(p)]]
    if trained:
        coefficients.append(_SAVED_PER_TOKEN[kind]["trained"][_mode(p)])
    # fp32 scalars per token: the norms' statistics (per head for Gemma's q/k norms), attention's log-sum-exp
    kv_heads = kv // head_dim
    scalars = 4 * (4 + 2 * heads + kv_heads) if kind == "gemma3" else 4 * (4 + heads)
    return scalars + sum(h * H + a * q + b * kv + c * I for h, a, b, c in coefficients)


def _backbone_activations(cfg: Any, kind: str, p: MemoryPrecision, tokens: int, frozen_layers: int,
                          trained_layers: int) -> int:
    """Saved-for-backward bytes of the layers a gradient flows through: each layer's own, or with
    checkpointing each layer's input plus one layer recomputed in backward."""
    if frozen_layers + trained_layers == 0:
        return 0
    frozen = layer_bytes_per_token(cfg, kind, p, trained=False) * tokens
    trained = layer_bytes_per_token(cfg, kind, p, trained=True) * tokens
    if p.checkpointing:
        stream = 2 if p.bf16_weights else 4
        inputs = (frozen_layers + trained_layers) * tokens * cfg.hidden_size * stream
        return inputs + (trained if trained_layers else frozen)
    return frozen_layers * frozen + trained_layers * trained


@dataclass(frozen=True)
class MemoryEstimate:
    rows: list[tuple[str, float]]  # (what, GiB)
    notes: tuple[str, ...] = ()    # what the estimate could not measure (a family without its own coefficients)

    @property
    def total_gib(self) -> float:
        return sum(v for _, v in self.rows)


def estimate_step_memory(counts: dict[str, Optional[PartCount]], encoder_config: Any, decoder_config: Any,
                         shape: StepShape, p: MemoryPrecision) -> MemoryEstimate:
    """Peak memory of one training step of `shape`: the weights (both backbones stay resident), gradients and
    AdamW moments of what trains, the activations saved for backward, the largest transient of backward, and on
    a CPU the process itself. Compared with measured peaks in docs/benchmarks.md (bench/bench_memory.py)."""
    known = {k: c for k, c in counts.items() if c is not None}
    may_train = sum(c.trainable for c in known.values())      # kept fp32 (master weights)
    frozen = sum(c.total for c in known.values()) - may_train
    trains = sum(known[part].trainable for part in shape.trains if part in known)
    rows = [("weights", frozen * (2 if p.bf16_weights else 4) + may_train * 4),
            ("grads + AdamW moments (what trains)", trains * 12)]
    if p.compute == "bf16":  # autocast's bf16 copy of each trained weight lives through the step
        rows.append(("bf16 copies of the trained weights", trains * 2))

    dec, notes = decoder_config, []
    if shape.decoder and dec is not None:
        tokens = shape.batch_size * (shape.prefix_len + FRAMING_TOKENS + shape.target_len)
        top = _trained_layers(shape, "decoder", known)
        kind, note = coefficients_for(dec, "decoder")
        notes += [note] if note else []
        stored = _backbone_activations(dec, kind, p, tokens, dec.num_hidden_layers - top, top)
        rows.append(("decoder activations" + (" (checkpointed)" if p.checkpointing else ""), stored))
        if p.cpu and not p.checkpointing:
            rows.append(("freed temporaries the CPU allocator keeps", CPU_RETAINED * stored))
        if p.compute == "bf16" and not p.bf16_weights and not p.checkpointing:
            # frozen fp32 weights are cast to bf16 each forward; backward needs those copies
            rows.append(("bf16 copies of the frozen decoder layers", (known["decoder"].total - _embedding(dec)) * 2))
        rows.append(("backward working set (a layer's gradients)", _backward_working_set(dec, kind, p, tokens)))
        rows.append(("target logits (one chunk, recomputed in backward)", _logits_bytes(dec, p, shape)))
    if shape.encodes_live and encoder_config is not None:
        tokens = shape.batch_size * shape.encoder_len
        n = _trained_layers(shape, "encoder", known)
        kind, note = coefficients_for(encoder_config, "encoder")
        notes += [note] if note and n else []
        rows.append(("encoder activations (trained layers)" + (" (checkpointed)" if p.checkpointing else ""),
                     _backbone_activations(encoder_config, kind, p, tokens, 0, n)))
        rows.append(("encoder forward working set", tokens * mlp_width(encoder_config) * 2 * 4))
    if p.cpu:
        rows.append(("CPU process (Python, torch, tokenizers)", CPU_PROCESS_GIB * GIB))
    return MemoryEstimate([(what, n / GIB) for what, n in rows], tuple(notes))


def _embedding(cfg: Any) -> int:
    return cfg.vocab_size * cfg.hidden_size


def _trained_layers(shape: StepShape, part: str, counts: dict[str, PartCount]) -> int:
    """How many top layers of a backbone train in this step (0 unless `part` trains)."""
    return counts[part].top_layers if part in shape.trains and part in counts else 0


def _backward_working_set(cfg: Any, kind: str, p: MemoryPrecision, tokens: int) -> int:
    """While a layer's backward runs: the gradients of its activations beside them (measured on this CPU, at
    batches 4 and 30: 3 to 3.5 layers' worth of saved activations on top of the layer itself)."""
    return 3 * layer_bytes_per_token(cfg, kind, p, trained=False) * tokens


def _logits_bytes(cfg: Any, p: MemoryPrecision, shape: StepShape) -> int:
    """The chunk's logits while its backward runs: 12 bytes per logit (fp32: logits, log-softmax, gradient; bf16:
    the logits and their fp32 copy, log-softmax, a bf16 gradient; measured 12.4 and 12.4 on this CPU), and under
    bf16 autocast the bf16 copy of the (tied) embedding that the LM head multiplies with."""
    n = min(shape.batch_size * shape.target_len, CE_CHUNK)
    weight_copy = _embedding(cfg) * 2 if p.compute == "bf16" and not p.bf16_weights else 0
    return n * cfg.vocab_size * 12 + weight_copy
