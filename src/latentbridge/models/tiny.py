"""Tiny offline stand-ins: a BPE tokenizer trained on given texts and small random models (ModernBERT and Gemma 3
for the tiny preset, any family of models/families.py through `tiny_config` / `build_tiny_backbone`), saved with
save_pretrained so they load through the same from_pretrained path as the real checkpoints. Everything is
deterministic for (texts, seed).

Special tokens mirror the real ones: the encoder's tokenizer wraps text in [CLS] ... [SEP]; the
decoder's has <pad>=0, <eos>=1, <bos>=2, <unk>=3 (the ids Gemma uses) plus <start_of_turn> and
<end_of_turn>, and a Gemma-style chat template, so the tiny decoder takes the instruction-tuned path.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, Gemma3ForCausalLM, ModernBertModel,
                          PreTrainedTokenizerFast)

from latentbridge.models.families import FAMILIES, TinySizes
from latentbridge.models.seeding import forked_seed, seeded

ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DECODER_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
TINY_VOCAB_SIZE = 1024
TINY_HIDDEN = 64
TINY_LM_STEPS = 300  # language-model warm-up of the tiny decoder (~30 s on one CPU core)


def train_bpe(texts: Sequence[str], vocab_size: int, specials: list[str]) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on texts (deterministic; specials get ids 0..n-1)."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    return tok


def pad_vocabulary(tok: Any, size: int) -> Any:
    """`tok` (a trained BPE `tokenizers.Tokenizer`) with its vocabulary filled up to `size` ids by unreachable
    `<unused{i}>` tokens, as Gemma's own tokenizer has: every id a model of that vocabulary emits then decodes.
    A small corpus cannot train 262k merges, so the real vocabulary sizes are reached this way."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for i in range(size - len(vocab)):
        vocab[f"<unused{i}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(data))


def encoder_tokenizer(texts: Sequence[str], vocab_size: int = TINY_VOCAB_SIZE, pad_to: Optional[int] = None) -> Any:
    tok = train_bpe(texts, vocab_size, ENCODER_SPECIALS)
    tok = pad_vocabulary(tok, pad_to) if pad_to else tok
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=8192)


def decoder_tokenizer(texts: Sequence[str], vocab_size: int = TINY_VOCAB_SIZE, pad_to: Optional[int] = None) -> Any:
    tok = train_bpe(texts, vocab_size, DECODER_SPECIALS)
    tok = pad_vocabulary(tok, pad_to) if pad_to else tok
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>", additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
                                  model_max_length=8192)
    out.chat_template = GEMMA_CHAT_TEMPLATE
    return out


def tiny_config(model_type: str, sizes: TinySizes, **token_ids: Optional[int]) -> Any:
    """The config of a tiny random model of the family `model_type` (a key of models/families.py's FAMILIES) with
    the given special-token ids."""
    return AutoConfig.for_model(model_type, vocab_size=sizes.vocab_size, **FAMILIES[model_type].tiny(sizes),
                                **token_ids)


def modernbert_config(vocab_size: int, hidden: int = TINY_HIDDEN, layers: int = 2, heads: int = 4) -> Any:
    return tiny_config("modernbert", TinySizes(vocab_size, hidden, layers, heads), pad_token_id=0, bos_token_id=2,
                       cls_token_id=2, eos_token_id=3, sep_token_id=3)


def gemma3_config(vocab_size: int, hidden: int = TINY_HIDDEN, layers: int = 2, heads: int = 4) -> Any:
    return tiny_config("gemma3_text", TinySizes(vocab_size, hidden, layers, heads), pad_token_id=0, eos_token_id=1,
                       bos_token_id=2)


def build_tiny_backbone(model_type: str, role: str, tokenizer: Any, out_dir: Path, seed: int,
                        hidden: int = TINY_HIDDEN, layers: int = 2, heads: int = 4) -> None:
    """A random tiny `model_type` model (AutoModel for the "encoder" role, AutoModelForCausalLM for the "decoder")
    over `tokenizer`'s vocabulary and special tokens, saved with the tokenizer into out_dir."""
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id or tokenizer.cls_token_id,
           "eos_token_id": tokenizer.eos_token_id or tokenizer.sep_token_id}
    config = tiny_config(model_type, TinySizes(len(tokenizer), hidden, layers, heads), **ids)
    auto = AutoModel if role == "encoder" else AutoModelForCausalLM
    seeded(seed, lambda: auto.from_config(config)).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def build_tiny_modernbert(texts: Sequence[str], out_dir: Path, seed: int, vocab_size: int = TINY_VOCAB_SIZE,
                          **sizes: int) -> None:
    """Train the tokenizer, build a random ModernBertModel, save both into out_dir."""
    tok = encoder_tokenizer(texts, vocab_size)
    model = seeded(seed, lambda: ModernBertModel(modernbert_config(len(tok), **sizes)))
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def _warmup_sample(tok: Any, rng: random.Random, texts: list[str], short: list[str]) -> str:
    """Half plain text, half a chat exchange of two short texts ending in <end_of_turn>: an instruction-tuned
    decoder knows its turn markers and when to stop, and the pipeline relies on both."""
    if rng.random() < 0.5 or not short:
        return tok.bos_token + rng.choice(texts)
    messages = [{"role": "user", "content": rng.choice(short)}, {"role": "assistant", "content": rng.choice(short)}]
    return tok.apply_chat_template(messages, tokenize=False)


def pretrain_lm(model: Any, tok: Any, texts: Sequence[str], steps: int, seed: int, batch_size: int = 16,
                max_len: int = 96, lr: float = 3e-3, on_step: Optional[Callable[[float], None]] = None) -> float:
    """Next-token training on texts, so the tiny decoder knows the corpus' language and the chat turn format
    before the pipeline uses it, as the real Gemma-it does. Deterministic for a seed (on one machine).
    `on_step(loss)` is called after every step (progress). Returns the last loss."""
    rng, texts = random.Random(f"tiny-lm-{seed}"), list(texts)
    short = [t for t in texts if len(t) <= 160]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss = float("nan")
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ops this small only lose from threads (10x slower on a busy 2-core machine)
    try:
        for _ in range(steps):
            samples = [_warmup_sample(tok, rng, texts, short) for _ in range(batch_size)]
            batch = tok(samples, add_special_tokens=False, max_length=max_len, truncation=True, padding=True,
                        return_tensors="pt")
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            loss = out.loss.item()
            if on_step is not None:
                on_step(loss)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return loss


def build_tiny_gemma3(texts: Sequence[str], out_dir: Path, seed: int, lm_steps: int = TINY_LM_STEPS,
                      vocab_size: int = TINY_VOCAB_SIZE, on_step: Optional[Callable[[float], None]] = None,
                      **sizes: int) -> None:
    """Train the tokenizer, build a Gemma3ForCausalLM, warm it up as an LM on texts, save both into out_dir."""
    tok = decoder_tokenizer(texts, vocab_size)
    model = seeded(seed + 1, lambda: Gemma3ForCausalLM(gemma3_config(len(tok), **sizes)))
    if lm_steps:
        with forked_seed(seed + 2):
            pretrain_lm(model, tok, texts, lm_steps, seed, on_step=on_step)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


REAL_SIZE_TRAINED_VOCAB = 8192  # merges learnt from the corpus; the rest of a real vocabulary is padding


def _with_token_ids(config: Any, **ids: int) -> Any:
    """A copy of `config` whose special-token ids are our tokenizer's."""
    config = copy.deepcopy(config)
    for name, value in ids.items():
        setattr(config, name, value)
    return config


def build_random_modernbert(texts: Sequence[str], out_dir: Path, seed: int, config: Any) -> None:
    """A random ModernBertModel of `config` (a published architecture) and a corpus-trained tokenizer padded to its
    vocabulary size, saved into out_dir: the real-size path, checked offline (bench/real_size.py)."""
    tok = encoder_tokenizer(texts, min(config.vocab_size, REAL_SIZE_TRAINED_VOCAB), pad_to=config.vocab_size)
    config = _with_token_ids(config, pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
                             bos_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id)
    seeded(seed, lambda: ModernBertModel(config)).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def build_random_gemma3(texts: Sequence[str], out_dir: Path, seed: int, config: Any) -> None:
    """A random Gemma3ForCausalLM of `config` (a published text architecture) with the chat-template tokenizer padded
    to its vocabulary size, saved into out_dir. No LM warm-up: at real size that is a GPU job."""
    tok = decoder_tokenizer(texts, min(config.vocab_size, REAL_SIZE_TRAINED_VOCAB), pad_to=config.vocab_size)
    config = _with_token_ids(config, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             bos_token_id=tok.bos_token_id)
    seeded(seed + 1, lambda: Gemma3ForCausalLM(config)).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
