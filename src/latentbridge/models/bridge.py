"""LatentBridge: the four parts in one module, what trains, and its trainable state (saved by training/checkpoint.py).

    text --encoder--> latents (B,K,D) --middle--> target latents --adapter--> prefix (B,P,H) --decoder--> text
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from latentbridge.errors import UserError
from latentbridge.models.adapter import PrefixAdapter
from latentbridge.models.backends import compile_in_place
from latentbridge.models.activation_checkpointing import checkpoint_layers
from latentbridge.models.decoder import Decoder, load_decoder_backbone
from latentbridge.models.encoder import LatentEncoder, load_encoder_backbone
from latentbridge.models.lora import add_lora, lora_layer_indices
from latentbridge.models.middle import LatentMiddle, build_middle
from latentbridge.models.runtime import apply_tf32
from latentbridge.models.seeding import seeded
from latentbridge.models.specs import MODEL_PARTS, DecoderSpec, ModelSpec, SamplingSpec

class LatentBridge(nn.Module):
    def __init__(self, encoder: LatentEncoder, middle: LatentMiddle, adapter: PrefixAdapter,
                 decoder: Decoder, spec: ModelSpec) -> None:
        super().__init__()
        self.encoder, self.middle, self.adapter, self.decoder = encoder, middle, adapter, decoder
        self.spec = spec

    @property
    def attn_implementation(self) -> str:
        """The attention backend the backbones run (the resolved one, not the request)."""
        return self.spec.runtime.resolved.attn_implementation

    @property
    def compute_dtype(self) -> torch.dtype:
        """What autocast computes in (backends.autocast)."""
        return self.spec.runtime.resolved.compute_dtype

    @property
    def device(self) -> torch.device:
        """Where the model computes: the adapter's device (every part trains, and infers, on one device)."""
        return next(self.adapter.parameters()).device

    # --- the pipeline, one call per arrow
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents (B, K, D), latent_mask (B, K))."""
        return self.encoder(input_ids, attention_mask)

    def predict(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Middle output for every slot (B, K, D): use with middle.latent_loss while training."""
        return self.middle(latents, latent_mask)

    def predict_until_stop(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Middle output cut at the stop latent: (latents (B, K, D), mask (B, K))."""
        return self.middle.generate(latents, latent_mask)

    def prefix(self, latents: torch.Tensor, latent_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, prefix_len, decoder_hidden) in the decoder's embedding space."""
        return self.adapter(latents, latent_mask)

    def latent_loss(self, pred: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
        return self.middle.latent_loss(pred, target, target_mask, self.spec.loss)

    def decoder_loss(self, prefix: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        return self.decoder.loss(prefix, target_ids, target_mask)

    @torch.no_grad()
    def generate(self, texts: list[str], max_input_len: int, sampling: SamplingSpec, use_middle: bool = True
                 ) -> list[str]:
        """Text in, text out: encode, (middle until stop), adapter, decoder sampling."""
        ids, mask = self.encoder.tokenize(texts, max_input_len, self.device)
        latents, latent_mask = self.encode(ids, mask)
        if use_middle:
            latents, latent_mask = self.predict_until_stop(latents, latent_mask)
        return self.decoder.decode(self.decoder.generate(self.prefix(latents, latent_mask), sampling))

    # --- which parameters train, and their state on disk
    def part_modules(self, part: str) -> list[nn.Module]:
        """The modules that a part trains: encoder/decoder mean only their top unfrozen layers."""
        return {
            "encoder": self.encoder.trainable_backbone_modules(),
            "compressor": [self.encoder.compressor],
            "middle": [self.middle],
            "adapter": [self.adapter],
            "decoder": self.decoder.trainable_backbone_modules(),
        }[part]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer any phase may train: compressor, middle, adapter and the top
        unfrozen encoder/decoder layers (whether or not they train right now). Not the frozen backbones."""
        keep = {id(t) for part in MODEL_PARTS for m in self.part_modules(part)
                for t in [*m.parameters(), *m.buffers()]}
        full = self.state_dict(keep_vars=True)
        return {k: v.detach() for k, v in full.items() if id(v) in keep}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise UserError("The saved model state does not fit this model (was it saved with other sizes or "
                            f"unfrozen layer counts?): missing {sorted(missing)[:5]}, unexpected "
                            f"{sorted(unexpected)[:5]}.")
        result = self.load_state_dict(state, strict=False)
        assert not result.unexpected_keys, result.unexpected_keys


def set_trainable(model: LatentBridge, parts: Iterable[str]) -> list[str]:
    """Freeze everything, then unfreeze `parts` (subset of MODEL_PARTS; "encoder" / "decoder" mean their top
    `unfrozen_layers` layers from the spec). Returns the names of the trainable parameters."""
    parts = set(parts)
    unknown = parts - set(MODEL_PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; expected a subset of {MODEL_PARTS}")
    model.requires_grad_(False)
    for part in parts:
        for module in model.part_modules(part):
            module.requires_grad_(True)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _decoder_lora(decoder: Decoder, spec: DecoderSpec, seed: Optional[int]) -> list[nn.Module]:
    """LoRA adapters on the decoder layers below the fully trained top ones (none without spec.lora); their
    initialisation is drawn from seed + 3 when `seed` is given."""
    if spec.lora is None:
        return []
    layers = lora_layer_indices(len(decoder.layers), spec.unfrozen_layers)
    return seeded(None if seed is None else seed + 3,
                  lambda: add_lora(decoder.model, decoder.layout, spec.lora, layers))


def keep_trainable_fp32(model: LatentBridge) -> None:
    """Master weights: every part that may train stays fp32, also when the backbones load in bf16 (their top
    unfrozen layers included). Autocast computes in bf16; AdamW updates fp32 weights, where a bf16 weight
    would round away every update smaller than 1/256 of its size."""
    for part in MODEL_PARTS:
        for module in model.part_modules(part):
            module.float()


def build_model(spec: ModelSpec, seed: Optional[int] = None, on_device: bool = True) -> LatentBridge:
    """Load both backbones (local folder or local hub cache), build the small parts, apply the runtime choices.

    With `seed`, the compressor, middle and adapter are initialised from seed, seed + 1, seed + 2 without
    touching the global RNG (the compressor then equals `LatentEncoder(...)` built right after
    `torch.manual_seed(seed)`, as preprocessing does); without it they draw from the global RNG.

    The machine's choices come resolved in spec.runtime.resolved (models/runtime.py): weights load in its
    weight dtype (fp32, or bf16 with flash_attention_2, which needs half precision), train under
    backends.autocast in its compute dtype (the model's `compute_dtype`), with its attention backend.
    `on_device=False` leaves the weights on the CPU, for the trainer to shard them onto the devices
    (training/sharding.py): a decoder too large for one GPU is never put on one whole."""
    rt, runtime = spec.runtime, spec.runtime.resolved
    apply_tf32(runtime)
    attn, weight_dtype = runtime.attn_implementation, runtime.weight_dtype
    enc_backbone, enc_tok = load_encoder_backbone(spec.encoder, attn, rt.allow_download, weight_dtype)
    dec_model, dec_tok = load_decoder_backbone(spec.decoder, attn, rt.allow_download, weight_dtype)
    encoder = seeded(seed, lambda: LatentEncoder(enc_backbone, enc_tok, spec.encoder))
    decoder = Decoder(dec_model, dec_tok, spec.decoder)
    for name, n, layers, field in (
            ("encoder", spec.encoder.unfrozen_layers, len(encoder.layers), "num_encoder_unfrozen_layers"),
            ("decoder", spec.decoder.unfrozen_layers, len(decoder.layers), "decoder_unfrozen_layers")):
        if n > layers:
            raise UserError(f"{field} is {n} but the {name} has only {layers} layers; set --"
                            f"{field.replace('_', '-')} to at most {layers}.")
    decoder.add_lora_modules(_decoder_lora(decoder, spec.decoder, seed))
    middle = seeded(None if seed is None else seed + 1, lambda: build_middle(spec.middle))
    adapter = seeded(None if seed is None else seed + 2,
                     lambda: PrefixAdapter(spec.adapter, decoder.hidden_size, decoder.token_embedding_rms()))
    model = LatentBridge(encoder, middle, adapter, decoder, spec)
    keep_trainable_fp32(model)
    if rt.gradient_checkpointing:  # frozen layers too: the adapter stages' gradient flows through the whole decoder
        checkpoint_layers([*encoder.layers, *decoder.layers])
    if on_device:
        model.to(runtime.device)
    set_trainable(model, ())
    if rt.compile:
        for module in (middle, adapter, encoder.compressor):
            compile_in_place(module, rt.compile_mode)
    return model
