"""The specs the orchestration layer hands the data layer, built from the config in one place (recipe.py):
which datasets and sources to read (`DataSpec`, `PretrainSource`, `Columns`), how cache records are made and
stored (`CacheSpec`), and this process's share of a build run by several (`Shards`). Nothing else in data/
is imported here, so every data module can import these without a circle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from latentbridge.data.batch import ATTENTION_MASK, INPUT_IDS, TARGET_ATTENTION_MASK, TARGET_IDS, TEXT


@dataclass(frozen=True)
class CacheSpec:
    """How records are made and stored (built from the config's cache_* / preprocess_* fields)."""

    max_seq_len: int = 512
    max_target_len: int = 256
    batch_size: int = 32
    store_text: bool = False
    store_input_ids: bool = False
    store_attention_mask: bool = False
    store_target_ids: bool = True
    store_target_attention_mask: bool = True
    int8: bool = True
    write_offsets_index: bool = True
    format: str = "jsonl"
    sort_by_length: bool = True
    chunk_size: int = 2048  # examples read, length-sorted, encoded and written at a time (and shared out by rank)

    def fields(self) -> list[str]:
        names = {TEXT: self.store_text, INPUT_IDS: self.store_input_ids, ATTENTION_MASK: self.store_attention_mask,
                 TARGET_IDS: self.store_target_ids, TARGET_ATTENTION_MASK: self.store_target_attention_mask}
        return [n for n, on in names.items() if on]

    def content_parts(self) -> dict[str, Any]:
        """The settings that change what is stored (batch size and sorting do not)."""
        parts = asdict(self)
        for k in ("batch_size", "sort_by_length", "chunk_size"):
            parts.pop(k)
        return parts


def _nothing() -> None:
    return None


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Shards:
    """This process's share of a cache build run by several (torchrun / accelerate launch).

    Chunk j of every split is encoded by rank j % count; each rank writes its chunks as shard files in the
    build folder, and rank 0 merges them, in chunk order, into the files a single process writes, then
    commits. `barrier()` waits for every rank; `share(value)` returns rank 0's value on every rank.
    """

    rank: int = 0
    count: int = 1
    barrier: Callable[[], None] = _nothing
    share: Callable[[Any], Any] = _same


@dataclass(frozen=True)
class PretrainSource:
    """One pretraining source: where it is, the config field naming it, its document cap and weight."""

    name: str  # short name stored in the cache: "wikitext", "arxiv", "english", a mix source's name
    location: str  # hub name or local path (the dialogue dataset's for task_texts)
    field: str  # config field, for error messages
    max_samples: Optional[int] = None  # cap on training pairs taken from this source
    weight: Optional[float] = None  # sampling weight in a mix; None: the unweighted seed-004 sources
    subset: Optional[str] = None  # hub configuration name
    split: Optional[str] = None  # the split to read (none: train, with validation from its validation split)
    text_field: Optional[str] = None  # the text column (none: found by name)
    text_template: Optional[str] = None  # a format string over the row's columns, instead of text_field
    task_texts: bool = False  # the dialogue dataset's own input and target texts


@dataclass(frozen=True)
class Columns:
    """Which columns of the dialogue dataset give a row's input and target text (None: found by name)."""

    input_field: Optional[str] = None
    target_field: Optional[str] = None
    input_template: Optional[str] = None  # a format string over the row's columns, instead of input_field


@dataclass(frozen=True)
class DataSpec:
    """Everything the data layer needs to know about datasets (built from the config in one place)."""

    dataset: str
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    dialogue_max_train: Optional[int] = None  # cap on dialogue training pairs
    max_validation: Optional[int] = None  # cap on the validation examples of each collection
    max_test: Optional[int] = None  # cap on the dialogue test split
    pretrain: tuple[PretrainSource, ...] = ()
    pretrain_max_train: Optional[int] = None  # cap on all pretraining training pairs together
    validation_fraction: float = 0.05
    seed: int = 0
    max_document_chars: Optional[int] = None  # trim long documents before splitting them
    dataset_field: str = "dataset_name"
    hf_cache_dir: Optional[str] = None
    columns: Columns = Columns()

    @property
    def weighted(self) -> bool:
        """Whether the pretraining sources are a weighted mix (pretrain_mix)."""
        return any(s.weight is not None for s in self.pretrain)
