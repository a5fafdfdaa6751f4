"""Decoder: a causal LM of any family (models/families.py) conditioned on the adapter's prefix through `inputs_embeds`.

Input layout: [head] [prefix (P)] [tail] [target tokens]. When the tokenizer has a chat template, head/tail are
the turn markers around the user's content, read off the template itself (for Gemma `<bos><start_of_turn>user\\n`
and `<end_of_turn>\\n<start_of_turn>model\\n`), and targets end with the token the template closes an assistant
turn with (families.end_of_turn_id: Gemma's `<end_of_turn>`, ChatML's `<|im_end|>`); generation stops on it or
EOS. Without a template head is BOS (when the tokenizer has one), tail is empty and targets end with EOS. Token
embeddings come from `get_input_embeddings()`, which for Gemma already multiplies by sqrt(hidden).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList, NoRepeatNGramLogitsProcessor

from latentbridge.models.families import Layout, end_of_turn_id, find_layout
from latentbridge.models.pretrained import check_hidden_dim, load_pretrained
from latentbridge.models.specs import DecoderSpec, SamplingSpec
from latentbridge.token_layout import cut_at_stop, target_layout

CE_CHUNK = 1024  # target tokens whose logits exist at once in the loss
_CONTENT = "\u2063LATENTBRIDGE_PREFIX\u2063"


def load_decoder_backbone(spec: DecoderSpec, attn_implementation: str, allow_download: bool = False,
                          dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(the causal LM, tokenizer) through AutoModelForCausalLM/AutoTokenizer, the text decoder taken out of an
    image-text Gemma 3 checkpoint (`text_decoder`); hidden size checked."""
    tokenizer = load_pretrained(AutoTokenizer, spec.model, spec.model_field, "tokenizer", allow_download)
    model = text_decoder(load_pretrained(AutoModelForCausalLM, spec.model, spec.model_field, "decoder",
                                         allow_download, attn_implementation=attn_implementation, dtype=dtype))
    check_hidden_dim(model.config.hidden_size, spec.expected_hidden_dim, spec.hidden_dim_field, spec.model)
    return model, tokenizer


def text_decoder(model: nn.Module) -> nn.Module:
    """The causal text decoder of a loaded Gemma 3 checkpoint. 270m and 1b load as Gemma3ForCausalLM, kept as is;
    4b and larger are image-text models (Gemma3ForConditionalGeneration): their language model and LM head
    (tied to its embeddings) move into a Gemma3ForCausalLM of the text config, and the vision tower is dropped."""
    language_model = getattr(getattr(model, "model", None), "language_model", None)
    if language_model is None:
        return model
    with torch.device("meta"):  # the shell only: both of its parts are replaced by the loaded ones
        text = AutoModelForCausalLM.from_config(model.config.get_text_config())
    text.model, text.lm_head = language_model, model.lm_head
    text.generation_config = model.generation_config
    return text


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def target_end_id(tokenizer: Any) -> int:
    """The token that closes every target: the end of an assistant turn in the chat template, else EOS."""
    return end_of_turn_id(tokenizer)


def target_token_ids(tokenizer: Any, text: str, max_len: int, end_id: int) -> list[int]:
    """One target as the decoder trains on it (latentbridge.token_layout): no BOS, at most max_len - 1 text
    tokens, then end_id."""
    return target_layout(tokenizer(text, add_special_tokens=False)["input_ids"], max_len, end_id)


class NewTokensNoRepeat:
    """`no_repeat_ngram_size` over the generated tokens only. Hand-written around transformers' processor
    because that one also counts the prompt's n-grams, which would forbid a model given the text as a prompt
    (the direct baseline) to copy any of its phrases, while the latent path's prompt is embeddings only."""

    def __init__(self, n: int, prompt_len: int) -> None:
        self.inner, self.prompt_len = NoRepeatNGramLogitsProcessor(n), prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids[:, self.prompt_len:], scores)


def sampling_kwargs(sampling: SamplingSpec, prompt_len: int = 0) -> dict[str, Any]:
    """`generate()` keyword arguments for `sampling`; greedy decoding clears the model's own sampling defaults.
    `prompt_len`: tokens before the generated ones in the ids generate() sees (0 with inputs_embeds)."""
    repeats = {}
    if sampling.no_repeat_ngram_size:
        repeats = {"logits_processor": LogitsProcessorList([NewTokensNoRepeat(sampling.no_repeat_ngram_size,
                                                                                prompt_len)])}
    if not sampling.do_sample:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, **repeats}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "top_k": sampling.top_k if sampling.top_k > 0 else None, **repeats}


class Decoder(nn.Module):
    def __init__(self, model: nn.Module, tokenizer: Any, spec: DecoderSpec,
                 lora_modules: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.model = model
        self._lora_modules: list[nn.Module] = []
        self.add_lora_modules(lora_modules)
        self.tokenizer = tokenizer
        self.spec = spec
        self.layout: Layout = find_layout(model, spec.model, "decoder")
        self.chat = has_chat_template(tokenizer)
        head, tail = self._frame_text()
        self.register_buffer("head_ids", self._ids(head), persistent=False)
        self.register_buffer("tail_ids", self._ids(tail), persistent=False)
        self.end_id = target_end_id(tokenizer)
        self.stop_ids = sorted({t for t in (tokenizer.eos_token_id, self.end_id) if t is not None})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def add_lora_modules(self, modules: Sequence[nn.Module]) -> None:
        """Count LoRA adapters injected into `model` (models/lora.py) among what trains with the decoder; a plain
        list: they are registered where they sit in `model`."""
        self._lora_modules.extend(modules)

    def _frame_text(self) -> tuple[str, str]:
        if not self.chat:
            return self.tokenizer.bos_token or "", ""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": _CONTENT}], tokenize=False,
                                                  add_generation_prompt=True)
        head, tail = text.split(_CONTENT)
        return head, tail

    def _ids(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.get_submodule(self.layout.blocks)

    @property
    def body(self) -> nn.Module:
        """The bare transformer: embeddings in, hidden states out (no LM head)."""
        return self.model.get_submodule(self.layout.body)

    def trainable_backbone_modules(self) -> list[nn.Module]:
        """The top `unfrozen_layers` layers and the final norm where the family has one (embeddings / tied LM
        head stay frozen), and the LoRA adapters of the layers below (models/lora.py) when LoRA is on."""
        n = self.spec.unfrozen_layers
        norm = [] if self.layout.final_norm is None else [self.model.get_submodule(self.layout.final_norm)]
        return ((list(self.layers[-n:]) + norm) if n > 0 else []) + self._lora_modules

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings exactly as the model sees them (scaled by sqrt(hidden) for Gemma)."""
        return self.model.get_input_embeddings()(ids)

    @torch.no_grad()
    def token_embedding_rms(self) -> float:
        """RMS of the real scaled token embeddings: the scale the prefix must come out at."""
        emb = self.model.get_input_embeddings()
        scale = float(getattr(emb, "embed_scale", torch.tensor(1.0)))
        return float(emb.weight.float().pow(2).mean().sqrt()) * scale

    def target_ids(self, texts: list[str], max_len: int, device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) of targets as the decoder is trained on them: no BOS, text truncated to
        max_len - 1 tokens, then the end token (`end_id`), right-padded."""
        rows = [target_token_ids(self.tokenizer, t, max_len, self.end_id) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids.to(device), mask.to(device)

    def _framed(self, prefix: torch.Tensor) -> torch.Tensor:
        B = prefix.shape[0]
        head = self.embed(self.head_ids)[None].expand(B, -1, -1)
        tail = self.embed(self.tail_ids)[None].expand(B, -1, -1)
        return torch.cat([head, prefix.to(head.dtype), tail], dim=1)   # (B, h + P + t, H)

    def loss(self, prefix: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        """Teacher-forced token cross-entropy of the targets given the prefix (framing positions carry no
        loss). reduction "mean": over all valid target tokens of the batch; "none": per row (B,)."""
        framed = self._framed(prefix)                                          # (B, F, H)
        F_len, T = framed.shape[1], target_ids.shape[1]
        embeds = torch.cat([framed, self.embed(target_ids)], dim=1)           # (B, F + T, H)
        attn = torch.cat([target_mask.new_ones(target_mask.shape[0], F_len), target_mask], dim=1)
        hidden = self.body(inputs_embeds=embeds, attention_mask=attn, use_cache=False).last_hidden_state
        # hidden state at position s predicts token s + 1: the targets are read from F-1 .. F+T-2
        mask = target_mask.bool()
        h = hidden[:, F_len - 1: F_len - 1 + T][mask]                         # (N, H) valid targets only
        ce = self._token_ce(h, target_ids[mask])                              # (N,)
        if reduction == "none":
            rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
            per_row = torch.zeros(mask.shape[0], device=ce.device, dtype=ce.dtype).index_add(0, rows, ce)
            return per_row / mask.sum(1).clamp_min(1)
        return ce.sum() / mask.sum().clamp_min(1)

    def _token_ce(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per token from hidden states (N, H), CE_CHUNK tokens at a time. While training, each
        chunk's logits are recomputed in backward instead of stored: with Gemma's 262k vocabulary the logits
        of a whole batch would otherwise be the largest tensor of the step."""
        chunks = []
        for start in range(0, h.shape[0], CE_CHUNK):
            args = (h[start: start + CE_CHUNK], labels[start: start + CE_CHUNK])
            if torch.is_grad_enabled() and h.requires_grad:
                chunks.append(checkpoint(self._chunk_ce, *args, use_reentrant=False))
            else:
                chunks.append(self._chunk_ce(*args))
        return torch.cat(chunks) if chunks else h.new_zeros(0, dtype=torch.float32)

    def _chunk_ce(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(h).float()                               # (n, V)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits, labels, reduction="none")

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, sampling: SamplingSpec) -> list[list[int]]:
        """Token ids generated after the prefix, one list per row, cut before the first stop id."""
        embeds = self._framed(prefix)
        attn = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        kwargs = sampling_kwargs(sampling)
        out = self.model.generate(inputs_embeds=embeds, attention_mask=attn, max_new_tokens=sampling.max_new_tokens,
                                  eos_token_id=self.stop_ids, pad_token_id=self.pad_id, **kwargs)
        # with inputs_embeds only, generate returns just the new tokens
        return [cut_at_stop(row, self.stop_ids) for row in out.tolist()]

    def decode(self, rows: list[list[int]]) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]
