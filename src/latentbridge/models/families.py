"""The one seam between latentbridge and a backbone of any family: an AutoModel text encoder (ModernBERT, BERT,
MiniLM, RoBERTa, DistilBERT, ...) or an AutoModelForCausalLM decoder (Gemma 3, Llama, SmolLM2, Qwen2/3, GPT-2, ...).

Where the parts sit is found through transformers' own accessors, never attribute paths written for one family:
the bare transformer is `base_model` (`base_model_prefix`) or `get_decoder()`, its block list the ModuleList whose
blocks' class is in `_no_split_modules` (the unit transformers itself never splits), the final norm a norm that
is a direct child of the bare transformer, the embeddings and LM head `get_input_embeddings` /
`get_output_embeddings`. The token that ends an assistant turn is read by rendering one through the tokenizer's
chat template. `FAMILIES`, keyed by `config.model_type`, holds only what must differ per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional

from jinja2.exceptions import TemplateError
from torch import nn

from latentbridge.errors import UserError

# Attention and MLP projections of the Llama-style blocks (Gemma, Llama, SmolLM2, Qwen)
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TinySizes:
    """The sizes of a tiny random backbone (tests, offline stand-ins)."""

    vocab_size: int
    hidden: int = 64
    layers: int = 2
    heads: int = 4


def _bert_like(s: TinySizes) -> dict[str, Any]:
    return {"hidden_size": s.hidden, "intermediate_size": 2 * s.hidden, "num_hidden_layers": s.layers,
            "num_attention_heads": s.heads, "max_position_embeddings": 1024}


def _llama_like(s: TinySizes) -> dict[str, Any]:
    return {**_bert_like(s), "num_key_value_heads": 1, "head_dim": s.hidden // s.heads, "tie_word_embeddings": True}


def _gemma3(s: TinySizes) -> dict[str, Any]:
    head_dim = s.hidden // s.heads
    return {**_llama_like(s), "query_pre_attn_scalar": head_dim, "sliding_window": 64,
            "layer_types": ["sliding_attention"] * (s.layers - 1) + ["full_attention"]}


@dataclass(frozen=True)
class Family:
    """What one family does differently. `memory`: the key of the measured per-layer coefficients in
    models/memory.py (None: not measured for this family); `lora_targets`: the Linear (or GPT-2 Conv1D) modules
    LoRA adapts by default; `tiny`: the config keywords of a tiny random model of the family."""

    lora_targets: tuple[str, ...]
    tiny: Callable[[TinySizes], dict[str, Any]]
    memory: Optional[str] = None


FAMILIES: dict[str, Family] = {
    "modernbert": Family((), lambda s: {**_bert_like(s), "local_attention": 64}, memory="modernbert"),
    "bert": Family((), _bert_like),
    "roberta": Family((), _bert_like),
    "distilbert": Family((), lambda s: {"dim": s.hidden, "hidden_dim": 2 * s.hidden, "n_layers": s.layers,
                                        "n_heads": s.heads, "max_position_embeddings": 1024}),
    "gemma3_text": Family(LLAMA_PROJECTIONS, _gemma3, memory="gemma3"),
    "llama": Family(LLAMA_PROJECTIONS, _llama_like),
    "qwen2": Family(LLAMA_PROJECTIONS, lambda s: {k: v for k, v in _llama_like(s).items() if k != "head_dim"}),
    "qwen3": Family(LLAMA_PROJECTIONS, _llama_like),
    "gpt2": Family(("c_attn", "c_proj", "c_fc"), lambda s: {"n_embd": s.hidden, "n_layer": s.layers,
                                                             "n_head": s.heads, "n_positions": 1024}),
}
ENCODER_FAMILIES = ("modernbert", "bert", "roberta", "distilbert")
DECODER_FAMILIES = ("gemma3_text", "llama", "qwen2", "qwen3", "gpt2")
_KNOWN = {"encoder": ENCODER_FAMILIES, "decoder": DECODER_FAMILIES}


def family(model_type: str) -> Optional[Family]:
    """The table's row for `model_type`, or None for a family the table does not know (the seam still works)."""
    return FAMILIES.get(model_type)


@dataclass(frozen=True)
class Layout:
    """Where a loaded backbone's parts sit, as submodule paths from the model itself (paths, not modules: a module
    kept as an attribute of another nn.Module would be registered, and saved, twice)."""

    model_type: str
    blocks: str                # the ModuleList of transformer blocks
    final_norm: Optional[str]  # the norm after the last block (None: post-norm families such as BERT have none)
    body: str                  # the bare transformer that returns hidden states ("" when the model is one)


def find_layout(model: nn.Module, name: str, role: str) -> Layout:
    """The layout of `model` (loaded from `name`) as an encoder or a decoder (`role`); a UserError naming the
    model, its type and what is missing when the seam cannot find a part."""
    body = _decoder_body(model) if role == "decoder" else getattr(model, "base_model", model)
    if body is None:
        _unsupported(model, name, role, "a bare transformer (get_decoder() returns nothing)")
    if role == "decoder" and model.get_output_embeddings() is None:
        _unsupported(model, name, role, "an LM head (get_output_embeddings() returns nothing)")
    if model.get_input_embeddings() is None:
        _unsupported(model, name, role, "token embeddings (get_input_embeddings() returns nothing)")
    body_path = module_path(model, body)
    blocks = _under(body_path, _block_list(model, body, name, role))
    norm = _final_norm(body)
    return Layout(model.config.model_type, blocks, None if norm is None else _under(body_path, norm), body_path)


def _under(parent: str, path: str) -> str:
    return f"{parent}.{path}" if parent else path


def _decoder_body(model: nn.Module) -> Optional[nn.Module]:
    get_decoder = getattr(model, "get_decoder", None)
    body = get_decoder() if get_decoder is not None else None
    return body if body is not None and body is not model else getattr(model, "base_model", None)


def module_path(root: nn.Module, module: nn.Module) -> str:
    """The dotted path of `module` inside `root` ("" for root itself)."""
    return next(path for path, m in root.named_modules() if m is module)


def _block_list(model: nn.Module, body: nn.Module, name: str, role: str) -> str:
    """The path (inside `body`) of its one ModuleList of identical blocks, preferring blocks whose class is in
    `_no_split_modules`."""
    uniform = [(path, m) for path, m in body.named_modules()
               if isinstance(m, nn.ModuleList) and len(m) and len({type(b) for b in m}) == 1]
    outer = [(p, m) for p, m in uniform if not any(p.startswith(q + ".") for q, _ in uniform)]
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    named = [(p, m) for p, m in outer if type(m[0]).__name__ in no_split]
    found = named or outer
    if len(found) != 1:
        what = ("a list of transformer blocks" if not found else
                f"one list of transformer blocks (found {len(found)}: {', '.join(p for p, _ in found)})")
        _unsupported(model, name, role, what)
    return found[0][0]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or type(module).__name__.endswith("Norm")


def _final_norm(body: nn.Module) -> Optional[str]:
    norms = [n for n, m in body.named_children() if _is_norm(m)]
    return norms[-1] if norms else None


def _unsupported(model: nn.Module, name: str, role: str, missing: str) -> NoReturn:
    model_type = getattr(model.config, "model_type", "?")
    raise UserError(f"The {role} {name!r} ({type(model).__name__}, model_type {model_type!r}) has a layout "
                    f"latentbridge cannot use: it found no {missing}. latentbridge takes any text encoder AutoModel "
                    "loads and any causal LM AutoModelForCausalLM loads whose blocks sit in one ModuleList; choose "
                    f"a model of such a family (for example {', '.join(_KNOWN[role])}).")


_MARK = "\u2063LATENTBRIDGE_REPLY\u2063"


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that closes an assistant turn: the first token the chat template writes after a reply (Gemma's
    <end_of_turn>, ChatML's <|im_end|>, Llama 3's <|eot_id|>), or EOS when there is no template."""
    ids = _reply_tail_ids(tokenizer) if getattr(tokenizer, "chat_template", None) else []
    if ids:
        return int(ids[0])
    if tokenizer.eos_token_id is None:
        raise UserError(f"The decoder's tokenizer ({type(tokenizer).__name__}) has neither a chat template nor an "
                        "EOS token, so latentbridge cannot tell where a target ends. Use a tokenizer with eos_token.")
    return int(tokenizer.eos_token_id)


def _reply_tail_ids(tokenizer: Any) -> list[int]:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARK}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except (TemplateError, ValueError, KeyError, TypeError):  # a template that cannot render a reply: use EOS
        return []
    tail = text.split(_MARK, 1)[1].strip() if _MARK in text else ""
    return tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
