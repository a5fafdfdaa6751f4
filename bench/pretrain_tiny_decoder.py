"""Experiment helper: a language-model-pretrained copy of the tiny Gemma 3 decoder.

The tiny preset's decoder is random, unlike the real (pretrained) Gemma it stands in for. This trains
a copy as a plain causal LM on the bundled corpus's training texts (dialogues, summaries, pretraining
documents; never the validation or test splits) and saves it with save_pretrained, so a run can use it
with `--gpt2-model OUT`. Used by the quality study in docs/benchmarks.md (## Quality).

    python bench/pretrain_tiny_decoder.py --out /tmp/gemma3_lm --steps 300
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpus_train_texts(data_dir: Path) -> list[str]:
    texts = []
    for row in map(json.loads, (data_dir / "samsum" / "train.jsonl").open()):
        texts += [row["dialogue"], row["summary"]]
    for name in ("wikitext", "arxiv", "english"):
        texts += [json.loads(line)["text"] for line in (data_dir / "pretrain" / f"{name}.jsonl").open()]
    return texts


def main() -> None:
    import torch
    import torch.nn.functional as F

    from src.assets import ensure_tiny_assets
    from src.models.decoder import load_decoder_backbone
    from src.models.specs import DecoderSpec
    from src.training.schedule import build_scheduler

    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--assets", type=Path, default=ROOT / "cache" / "tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    assets = ensure_tiny_assets(a.assets, a.seed)
    model, tok = load_decoder_backbone(DecoderSpec(model=str(assets.decoder_dir)), "sdpa")
    texts = corpus_train_texts(assets.data_dir)
    rng = random.Random(a.seed)
    torch.manual_seed(a.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    sched = build_scheduler(opt, warmup_steps=20, total_steps=a.steps)
    model.train()
    start = time.perf_counter()
    for step in range(a.steps):
        batch = tok(rng.sample(texts, a.batch_size), truncation=True, max_length=a.max_len, padding=True,
                    return_tensors="pt")  # <bos> text, right-padded
        ids, mask = batch["input_ids"], batch["attention_mask"]
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.perf_counter() - start:.0f}s)", flush=True)
    model.save_pretrained(a.out)
    tok.save_pretrained(a.out)
    print(f"saved {a.out}")


if __name__ == "__main__":
    main()
