"""Small fakes for the data layer: a WordLevel tokenizer trained on the bundled corpus, a fake encoder."""

from pathlib import Path

import pytest
import torch

from latentbridge.data.corpus import corpus_paths, corpus_texts, write_corpus
from latentbridge.data.preprocess import CacheSpec, Tokenizers
from latentbridge.data.sources import DataSpec, PretrainSource

LATENT_DIM, K = 16, 4


def make_tokenizer(bos_eos: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<eos>"]
    tok.train_from_iterator(corpus_texts(0), trainers.WordLevelTrainer(special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", eos_token="<eos>")


class FakeEncoder:
    """Deterministic stand-in for encoder + compressor: embed, mean-pool K contiguous segments."""

    def __init__(self, vocab: int, dim: int = LATENT_DIM, k: int = K):
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


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, seed=0)
    return root


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory) -> Path:
    """The bundled corpus cut down (64/16/16 dialogues, 100 documents a source) for fast cache tests."""
    root = tmp_path_factory.mktemp("small_corpus")
    write_corpus(root, seed=0)
    sizes = {"train": 64, "validation": 16, "test": 16, "wikitext": 100, "arxiv": 100, "english": 100}
    for path in root.rglob("*.jsonl"):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: sizes[path.stem]]))
    return root


@pytest.fixture()
def fake_encoder(tokenizer):
    return FakeEncoder(len(tokenizer))


def data_spec(corpus_dir: Path, **overrides) -> DataSpec:
    p = corpus_paths(corpus_dir)
    base = dict(dataset=str(p["dataset"]),
                pretrain=tuple(PretrainSource(n, str(p[n]), f"{n}_dataset") for n in ("wikitext", "arxiv", "english")),
                hf_cache_dir=str(corpus_dir / ".hf"))
    base.update(overrides)
    return DataSpec(**base)


def cache_spec(**overrides) -> CacheSpec:
    return CacheSpec(**{"max_seq_len": 64, "max_target_len": 24, "batch_size": 16, **overrides})


def tokenizers(tok) -> Tokenizers:
    return Tokenizers(encoder=tok, decoder=tok)
