"""Side measurements behind docs/benchmarks.md "Quality on real text (issue 9)": how hard the docstring task
is, and how much of a text its latents carry. Run by hand on the folder bench/build_real_corpus.py wrote.

    python bench/probe_real_corpus.py cache/real/docstrings copy            # summary tokens found in the input
    python bench/probe_real_corpus.py cache/real/docstrings heuristics      # rule-based and per-package outputs
    python bench/probe_real_corpus.py cache/real/docstrings probe --encoder-hidden 256 --latent-dim 256
    python bench/probe_real_corpus.py cache/real/docstrings lm --hidden 64 --steps 1000 --vocab 4096

probe: linear probes (multi-label, token recall at |summary tokens|) from a random tiny encoder's latents
(its own summary's, then the input's) and from the input's bag of words to the summary's tokens, against
the tokens' frequencies. lm: nats per word of the test summaries under a tiny decoder after its LM warm-up.
One torch thread; the tokenizers are trained on the train split.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def rows(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def source(r: dict) -> str:
    return f"{r['qualname']}\n{r['body']}"


def train_texts(folder: Path) -> list[str]:
    return [t for r in rows(folder, "train") for t in (source(r), r["summary_line"])]


def copy(folder: Path, vocab: int) -> None:
    from latentbridge.models.tiny import encoder_tokenizer

    tok, test = encoder_tokenizer(train_texts(folder), vocab), rows(folder, "test")
    for n in (16, 32, 64, 128, 512):
        found = []
        for r in test:
            inputs = set(tok(source(r), add_special_tokens=False)["input_ids"][:n])
            summary = set(tok(r["summary_line"], add_special_tokens=False)["input_ids"])
            found.append(len(summary & inputs) / len(summary))
        print(f"summary tokens among the first {n} input tokens: {sum(found) / len(found):.3f}")


def heuristics(folder: Path) -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    train, test = rows(folder, "train"), rows(folder, "test")

    def score(outputs: list[str]) -> float:
        return 100 * sum(scorer.score(r["summary_line"], o)["rougeL"].fmeasure for r, o in zip(test, outputs)) / len(test)

    name = lambda r: r["qualname"].split(".")[-1].replace("_", " ")  # noqa: E731
    print(f"'Return the <name>.': {score([f'Return the {name(r)}.' for r in test]):.1f}")
    print(f"the body's first 12 words: {score([' '.join(r['body'].split()[:12]) for r in test]):.1f}")
    package = lambda r: r["qualname"].split(".")[0]  # noqa: E731
    rng, best = random.Random(0), {}
    for p in {package(r) for r in test}:  # per package: the training summary with the best ROUGE-L on 200 others
        own = [r["summary_line"] for r in train if package(r) == p] or [r["summary_line"] for r in train]
        pool = rng.sample(own, min(150, len(own)))
        best[p] = max(pool, key=lambda c: sum(scorer.score(x, c)["rougeL"].fmeasure for x in own[:200]))
    print(f"a constant per package: {score([best[package(r)] for r in test]):.1f}")


def probe(folder: Path, vocab: int, encoder_hidden: int, latent_dim: int, k: int, max_len: int) -> None:
    import tempfile

    import torch
    import torch.nn.functional as F

    from latentbridge.models.encoder import LatentEncoder, load_encoder_backbone
    from latentbridge.models.specs import EncoderSpec
    from latentbridge.models.tiny import build_tiny_modernbert

    folder_tmp = Path(tempfile.mkdtemp())
    build_tiny_modernbert(train_texts(folder), folder_tmp, 0, vocab_size=vocab, hidden=encoder_hidden)
    spec = EncoderSpec(model=str(folder_tmp), latent_dim=latent_dim, latent_seq_len=k)
    backbone, tok = load_encoder_backbone(spec, "sdpa", False, torch.float32)
    torch.manual_seed(0)
    encoder = LatentEncoder(backbone, tok, spec).eval()

    def latents(texts: list[str], length: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([encoder(*encoder.tokenize(texts[i:i + 64], length))[0].flatten(1)
                              for i in range(0, len(texts), 64)])

    def bag(texts: list[str], length: int) -> torch.Tensor:
        y = torch.zeros(len(texts), len(tok))
        for i, t in enumerate(texts):
            y[i, tok(t, truncation=True, max_length=length, add_special_tokens=False)["input_ids"]] = 1
        return y

    def recall(scores: torch.Tensor, y_test: torch.Tensor) -> float:
        """Share of each summary's tokens among its |tokens| best-scored ones, averaged."""
        hits = [y[s.topk(int(y.sum())).indices].sum().item() / y.sum().item() for s, y in zip(scores, y_test)]
        return sum(hits) / len(hits)

    def fitted(x_train, y_train, x_test) -> torch.Tensor:
        linear = torch.nn.Linear(x_train.shape[1], y_train.shape[1])
        opt = torch.optim.Adam(linear.parameters(), 3e-3)
        for _ in range(40):
            for i in range(0, len(x_train), 256):
                loss = F.binary_cross_entropy_with_logits(linear(x_train[i:i + 256]), y_train[i:i + 256])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            return linear(x_test)

    train, test = rows(folder, "train"), rows(folder, "test")
    y_train, y_test = bag([r["summary_line"] for r in train], 48), bag([r["summary_line"] for r in test], 48)
    summaries = [r["summary_line"] for r in train], [r["summary_line"] for r in test]
    sources = [source(r) for r in train], [source(r) for r in test]
    own = recall(fitted(latents(summaries[0], 48), y_train, latents(summaries[1], 48)), y_test)
    inputs = recall(fitted(latents(sources[0], max_len), y_train, latents(sources[1], max_len)), y_test)
    words = recall(fitted(bag(sources[0], max_len), y_train, bag(sources[1], max_len)), y_test)
    prior = recall(y_train.mean(0).expand(len(y_test), -1), y_test)
    print(f"encoder {encoder_hidden} wide, {k} x {latent_dim} latents: summary-token recall from the summary's "
          f"latents {own:.3f}, from the input's latents {inputs:.3f}, from the input's bag of words {words:.3f}, "
          f"token frequencies {prior:.3f}")


def lm(folder: Path, vocab: int, hidden: int, steps: int) -> None:
    import torch
    from transformers import Gemma3ForCausalLM

    from latentbridge.models.tiny import decoder_tokenizer, gemma3_config, pretrain_lm

    tok = decoder_tokenizer(train_texts(folder), vocab)
    torch.manual_seed(1)
    model = Gemma3ForCausalLM(gemma3_config(len(tok), hidden=hidden))
    start = time.perf_counter()
    pretrain_lm(model, tok, train_texts(folder), steps, 0)
    seconds = time.perf_counter() - start
    summaries = [r["summary_line"] for r in rows(folder, "test")]
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(summaries), 50):
            batch = tok([tok.bos_token + s for s in summaries[i:i + 50]], add_special_tokens=False, padding=True,
                        return_tensors="pt")
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            total += model(**batch, labels=labels).loss.item() * int((labels[:, 1:] != -100).sum())
    words = sum(len(s.split()) for s in summaries)
    print(f"decoder {hidden} wide, vocab {vocab}, {steps} warm-up steps ({seconds:.0f} s): "
          f"{total / words:.2f} nats a word on the test summaries")


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("what", choices=("copy", "heuristics", "probe", "lm"))
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--encoder-hidden", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--latent-seq-len", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    a = parser.parse_args()
    if a.what == "copy":
        copy(a.folder, a.vocab)
    elif a.what == "heuristics":
        heuristics(a.folder)
    elif a.what == "probe":
        probe(a.folder, a.vocab, a.encoder_hidden, a.latent_dim, a.latent_seq_len, a.max_seq_len)
    else:
        lm(a.folder, a.vocab, a.hidden, a.steps)


if __name__ == "__main__":
    main()
