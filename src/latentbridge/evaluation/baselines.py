"""The two reference points the latent pipeline is judged against.

constant  One training summary, output for every input: of a seeded random pool of `pool_size`
          training summaries (300 by default; scoring the whole train split costs |train| x |split|
          LCS computations), the one with the best mean ROUGE-L F-measure against the evaluated split's
          references. Chosen on the split it is scored on, so it is the best any single-output system
          drawn from that pool can do: a model that ignores its input lands here.
direct    The same decoder, fine-tuned on dialogue text -> summary with no latent bottleneck: the
          decoder reads the dialogue's own tokens where the latent path puts the adapter's prefix
          ([head] dialogue [tail] summary <end>, the chat framing of src/latentbridge/models/decoder.py), every
          decoder parameter trains, for as many optimizer steps as the latent path's adapter
          fine-tuning (same learning rate, batch size, accumulation, warm-up and clipping).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from latentbridge.evaluation.rouge import mean_rouge_l_against
from latentbridge.models.decoder import Decoder, sampling_kwargs
from latentbridge.models.specs import DecoderSpec
from latentbridge.token_layout import cut_at_stop, target_layout
from latentbridge.training.schedule import build_scheduler, optimizer_steps

DEFAULT_POOL_SIZE = 300


@dataclass(frozen=True)
class ConstantBaseline:
    summary: str
    mean_rouge_l: float
    pool_size: int
    pool_seed: int

    def predict(self, n: int) -> list[str]:
        return [self.summary] * n


def constant_baseline(train_summaries: Sequence[str], references: Sequence[str],
                      pool_size: int = DEFAULT_POOL_SIZE, seed: int = 0) -> ConstantBaseline:
    """The training summary (of a seeded pool of `pool_size`) with the best mean ROUGE-L on `references`."""
    unique = list(dict.fromkeys(s for s in train_summaries if s.strip()))
    if not unique or not references:
        raise ValueError("the constant baseline needs training summaries and references")
    pool = random.Random(seed).sample(unique, min(pool_size, len(unique)))
    scores = mean_rouge_l_against(pool, references)
    best = max(range(len(pool)), key=lambda i: (scores[i], -i))
    return ConstantBaseline(pool[best], scores[best], len(pool), seed)


# ----------------------------------------------------------------------------- direct baseline


@dataclass(frozen=True)
class DirectTraining:
    """How long and how the direct baseline trains (mirror of the latent path's adapter stage)."""

    steps: int
    lr: float
    seed: int = 0
    batch_size: int = 32
    accumulation: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_input_len: int = 512
    max_target_len: int = 256


@dataclass
class DirectResult:
    steps: int
    examples_seen: int
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step

    @property
    def final_loss(self) -> Optional[float]:
        tail = self.losses[-10:]
        return sum(tail) / len(tail) if tail else None


def _framing(model: Any, tokenizer: Any, name: str) -> Any:
    """The latent path's Decoder wrapper around the same backbone: head/tail ids, end and stop ids."""
    return Decoder(model, tokenizer, DecoderSpec(model=name))


def _prompt_ids(frame: Any, text: str, max_input_len: int) -> list[int]:
    ids = frame.tokenizer(text, add_special_tokens=False)["input_ids"][:max_input_len]
    return frame.head_ids.tolist() + ids + frame.tail_ids.tolist()


def _training_batch(frame: Any, pairs: Sequence[tuple[str, str]], max_input_len: int, max_target_len: int):
    """Right-padded rows [head dialogue tail summary end] with labels only on the summary tokens."""
    rows, labels = [], []
    for dialogue, summary in pairs:
        prompt = _prompt_ids(frame, dialogue, max_input_len)
        target = target_layout(frame.tokenizer(summary, add_special_tokens=False)["input_ids"], max_target_len,
                               frame.end_id)
        rows.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), frame.pad_id, dtype=torch.long)
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, l) in enumerate(zip(rows, labels)):
        ids[i, : len(r)], lab[i, : len(l)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(l), 1
    return ids, mask, lab


def direct_loss(model: Any, ids, mask, labels):
    """Mean token cross-entropy of the labelled (summary) tokens; the model's own logit soft-capping applies."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()   # (B, T-1, V)
    return F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100)


def train_direct_baseline(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], settings: DirectTraining,
                          *, name: str = "", device: str = "cpu",
                          on_step: Optional[Callable[[int, float], None]] = None) -> DirectResult:
    """Fine-tune every parameter of the causal LM `model` on (dialogue, summary) `pairs` for exactly
    `settings.steps` optimizer steps (the pairs are cycled in a seeded order). `name` is the model's
    hub name or folder (decides the chat framing, as in the latent path). Trains in place. `on_step(step, loss)`
    is called after each optimizer step (progress on the screen: the training takes minutes)."""
    if not pairs:
        raise ValueError("the direct baseline needs training pairs")
    frame = _framing(model, tokenizer, name)
    model.to(device).train()
    for p in model.parameters():
        p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = build_scheduler(optimizer, warmup_steps=settings.warmup_steps, total_steps=settings.steps)
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    order: list[int] = []
    result = DirectResult(steps=0, examples_seen=0)
    for _ in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(settings.accumulation):
            if len(order) < settings.batch_size:
                fresh = list(range(len(pairs)))
                rng.shuffle(fresh)
                order += fresh
            chosen, order = order[: settings.batch_size], order[settings.batch_size:]
            ids, mask, labels = _training_batch(frame, [pairs[i] for i in chosen], settings.max_input_len,
                                                settings.max_target_len)
            loss = direct_loss(model, ids.to(device), mask.to(device), labels.to(device)) / settings.accumulation
            loss.backward()
            step_loss += loss.item()
            result.examples_seen += len(chosen)
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        result.steps += 1
        result.losses.append(step_loss)
        if on_step is not None:
            on_step(result.steps, step_loss)
    model.eval()
    return result


def generate_direct(model: Any, tokenizer: Any, texts: Sequence[str], sampling: Any, *, name: str = "",
                    max_input_len: int = 512, batch_size: int = 32, device: str = "cpu") -> list[str]:
    """Summaries from the direct model: left-padded prompts [head dialogue tail], sampling per the
    `SamplingSpec`, cut at the first stop id (the latent path's decoding rules)."""
    frame = _framing(model, tokenizer, name)
    prompts = [_prompt_ids(frame, t, max_input_len) for t in texts]
    return _generate(model, frame, prompts, sampling, batch_size, device)


# What a user would type to get a summary without latentbridge: one line, then the input.
ZERO_SHOT_INSTRUCTION = "Summarize the following text in one short sentence."


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def zero_shot_prompt_ids(tokenizer: Any, text: str, max_input_len: int) -> list[int]:
    """One user turn, the instruction then `text` (cut to `max_input_len` tokens), rendered through the
    tokenizer's chat template with the assistant's turn opened."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_input_len]
    turn = [{"role": "user", "content": f"{ZERO_SHOT_INSTRUCTION}\n\n{tokenizer.decode(ids)}"}]
    rendered = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def generate_zero_shot(model: Any, tokenizer: Any, texts: Sequence[str], sampling: Any, *, name: str = "",
                       max_input_len: int = 512, batch_size: int = 32, device: str = "cpu") -> list[str]:
    """Summaries from the untrained decoder, prompted through its chat template with ZERO_SHOT_INSTRUCTION and
    each text; decoded by the latent path's rules (stop ids, sampling). The tokenizer must have a chat template."""
    frame = _framing(model, tokenizer, name)
    prompts = [zero_shot_prompt_ids(tokenizer, t, max_input_len) for t in texts]
    return _generate(model, frame, prompts, sampling, batch_size, device)


def _generate(model: Any, frame: Any, prompts: Sequence[list[int]], sampling: Any, batch_size: int,
              device: str) -> list[str]:
    """Left-padded batches of `prompts` continued per the `SamplingSpec`, each cut at its first stop id."""
    model.to(device).eval()
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), frame.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, p in enumerate(batch):  # left padding: generation continues every row at its end
            ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
        kwargs = sampling_kwargs(sampling, prompt_len=width)
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=sampling.max_new_tokens, eos_token_id=frame.stop_ids,
                                 pad_token_id=frame.pad_id, **kwargs)
        out += frame.decode([cut_at_stop(row, frame.stop_ids) for row in gen[:, width:].tolist()])
    return out


def adapter_stage_steps(n_examples: int, batch_size: int, epochs: int, accumulation: int) -> int:
    """Optimizer steps of an adapter stage over `n_examples` (the schedule's own count)."""
    return optimizer_steps(math.ceil(n_examples / batch_size), epochs, accumulation)
