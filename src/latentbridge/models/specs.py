"""Small, explicit settings for each model part (no torch, no Config import).

src/latentbridge/recipe.py is the one place that turns a `Config` into these; everything under
src/latentbridge/models/ takes only them. Torch-free, so the recipe stays importable without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

# the lists the Config offers as choices, named here for the models that build from them
from latentbridge.choices import ATTENTION_IMPLEMENTATIONS, STOP_LATENT_INITS

MODEL_PARTS = ("encoder", "compressor", "middle", "adapter", "decoder")


@dataclass(frozen=True)
class EncoderSpec:
    """A text encoder of any family AutoModel loads (hub name or local folder) plus the segment-pooling compressor."""

    model: str
    latent_dim: int
    latent_seq_len: int
    normalize_latent: bool = True
    unfrozen_layers: int = 0          # top backbone layers that may train (set_trainable decides when)
    expected_hidden_dim: Optional[int] = None  # checked against the loaded model
    hidden_dim_field: str = "modernbert_hidden_dim"  # named in the mismatch error
    model_field: str = "modernbert_model"            # named in the load error


@dataclass(frozen=True)
class MiddleSpec:
    """The middle: input latents to target latents (plus the stop latent), by a pre-norm transformer
    (`layers` .. `use_rope`) or, with architecture "mlp", by residual MLP blocks (`mlp_*`)."""

    latent_dim: int
    latent_seq_len: int
    architecture: str = "transformer"  # or "mlp" (models.middle.MIDDLES)
    layers: int = 4
    num_heads: int = 4
    ffn_multiplier: float = 4.0
    dropout: float = 0.1
    use_rope: bool = True
    rope_base: float = 10000.0
    mlp_layers: int = 4
    mlp_hidden_dim: int = 512
    use_rmsnorm: bool = True
    norm_eps: float = 1e-6
    normalize_latent: bool = True
    use_stop_latent: bool = True
    stop_latent_init: str = "random_normalized"
    stop_latent_seed: int = 1337
    stop_cosine_threshold: float = 0.99


@dataclass(frozen=True)
class LossSpec:
    """Weights of the latent losses: mse_weight x (MSE + stop MSE) + contrastive_weight x InfoNCE."""

    mse_weight: float = 1.0
    contrastive_weight: float = 0.1
    temperature: float = 0.1  # InfoNCE temperature on cosine similarities (not a Config field)


@dataclass(frozen=True)
class AdapterSpec:
    """`prefix_len` learned queries cross-attending over the latents, out in decoder embedding space."""

    latent_dim: int
    prefix_len: int
    num_heads: int = 4
    dropout: float = 0.1
    query_rope: bool = True   # use_prefix_rope
    key_rope: bool = True     # adapter_use_rope
    rope_base: float = 10000.0
    use_rmsnorm: bool = True
    norm_eps: float = 1e-6
    layers: int = 2
    ffn_multiplier: float = 2.0


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters (through peft) on the named Linear modules of the decoder layers that do not train in full."""

    rank: int
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()  # empty: the decoder family's own (models/families.py)


@dataclass(frozen=True)
class DecoderSpec:
    """A causal LM of any family AutoModelForCausalLM loads (hub name or local folder), conditioned through
    inputs_embeds."""

    model: str
    unfrozen_layers: int = 0
    expected_hidden_dim: Optional[int] = None
    hidden_dim_field: str = "gpt2_hidden_dim"
    model_field: str = "gpt2_model"
    lora: Optional[LoraSpec] = None  # LoRA on the layers below the unfrozen top ones (models/lora.py)


@dataclass(frozen=True)
class SamplingSpec:
    """How the decoder generates text."""

    max_new_tokens: int = 256
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50  # 0 disables top-k
    no_repeat_ngram_size: int = 0  # 0 allows repeats; n > 0 never generates the same n-gram twice


def torch_dtype(precision: str) -> Any:
    """torch.bfloat16 or torch.float32 for "bf16" or "fp32"."""
    import torch  # torch only when a model asks for a dtype: this module stays importable without it

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]


@dataclass(frozen=True)
class RuntimeRequest:
    """What a run asks of the machine: requests, which models/runtime.resolve_runtime turns into a `Runtime`."""

    device: str = "auto"
    use_bf16: bool = False
    use_fp16: bool = False
    attn_implementation: str = "sdpa"
    tf32: bool = True


@dataclass(frozen=True)
class Runtime:
    """What the machine gives a run, decided once (models/runtime.resolve_runtime): the device, the precision it
    computes in, the precision the frozen backbones load in, the attention backend, TF32, and one note per
    request that could not be met. Precisions are names ("bf16" | "fp32") so that this stays torch-free."""

    device: str = "cpu"
    precision: str = "fp32"
    weight_precision: str = "fp32"  # the backbones' weights: bf16 only under flash_attention_2, which needs it
    attn_implementation: str = "sdpa"
    tf32: bool = True  # TF32 matmuls asked for; they take effect on CUDA only (runtime.apply_tf32)
    device_note: Optional[str] = None
    precision_note: Optional[str] = None
    attention_note: Optional[str] = None

    @property
    def device_type(self) -> str:
        """"cuda" of "cuda:1": what the precision and attention decisions depend on."""
        return self.device.split(":")[0]

    @property
    def notes(self) -> tuple[str, ...]:
        """The notes of the requests this machine could not meet, for the log (doctor shows each beside its row)."""
        return tuple(n for n in (self.device_note, self.precision_note, self.attention_note) if n)

    @property
    def compute_dtype(self) -> Any:
        """The torch dtype of `precision` (autocast computes in it)."""
        return torch_dtype(self.precision)

    @property
    def weight_dtype(self) -> Any:
        """The torch dtype the frozen backbone weights load in."""
        return torch_dtype(self.weight_precision)

    def on(self, device: str) -> "Runtime":
        """The same decisions on another device of the same type: a launcher's per-rank `cuda:N`."""
        if device.split(":")[0] != self.device_type:
            raise ValueError(f"runtime resolved for {self.device}, not {device}")
        return dataclasses.replace(self, device=device)


@dataclass(frozen=True)
class RuntimeSpec:
    """How the models run: the resolved `Runtime`, and the build choices that do not depend on the machine."""

    resolved: Runtime = field(default_factory=Runtime)
    gradient_checkpointing: bool = False
    compile: bool = False
    compile_mode: str = "default"
    allow_download: bool = False  # never reach a model hub unless asked explicitly


@dataclass(frozen=True)
class ModelSpec:
    encoder: EncoderSpec
    middle: MiddleSpec
    adapter: AdapterSpec
    decoder: DecoderSpec
    loss: LossSpec = field(default_factory=LossSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)


@dataclass(frozen=True)
class StepShape:
    """One training step of a stage as the memory estimate sees it (models/memory.py): what trains and what
    runs, at which batch and lengths (the longest each text may be)."""

    trains: frozenset[str]
    decoder: bool            # a token objective: the prefix's gradient flows through every decoder layer
    encodes_live: bool       # the encoder runs on text in the step (it or the compressor trains, or no cache)
    batch_size: int
    encoder_len: int         # tokens of each text the encoder reads live
    prefix_len: int
    target_len: int


@dataclass(frozen=True)
class MemoryPrecision:
    """How a step holds its tensors: compute in "fp32" or "bf16" (autocast), frozen backbone weights in bf16
    (flash_attention_2 loads them so) or fp32, gradient checkpointing, and a CPU process (RSS: the Python
    runtime counts) or a GPU (allocated tensors only)."""

    compute: str = "fp32"
    bf16_weights: bool = False
    checkpointing: bool = False
    cpu: bool = False
