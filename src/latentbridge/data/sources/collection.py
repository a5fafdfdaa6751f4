"""A collection's splits as streams ("dialogue", "pretrain"), and the texts tiny models for this data are
trained on."""

from __future__ import annotations

from latentbridge.data.data_specs import DataSpec
from latentbridge.data.rows import Skips
from latentbridge.data.sources.dialogue import load_dialogue_split
from latentbridge.data.sources.mix import pretrain_split
from latentbridge.data.sources.pretrain import load_pretrain_source, source_rows, text_reader, train_split_name
from latentbridge.data.sources.streams import SplitStream

def load_collection(spec: DataSpec, collection: str) -> dict[str, SplitStream]:
    """All splits of a collection: "dialogue" -> train/validation/test, "pretrain" -> train/validation.
    Splits, columns and sources are checked now (UserError); the examples are read as the streams are."""
    if collection == "dialogue":
        return {"train": load_dialogue_split(spec, spec.train_split, spec.dialogue_max_train),
                "validation": load_dialogue_split(spec, spec.validation_split, spec.max_validation),
                "test": load_dialogue_split(spec, spec.test_split, spec.max_test)}
    if collection == "pretrain":
        parts = [load_pretrain_source(spec, s, spec.pretrain_max_train) for s in spec.pretrain]
        return {split: pretrain_split(spec, parts, split) for split in ("train", "validation")}
    raise ValueError(f"unknown collection {collection!r}")


def training_texts(spec: DataSpec, limit: int) -> list[str]:
    """The texts a tokenizer and language model for this data are trained on: the dialogue dataset's training
    inputs and targets, then the training documents of the other pretraining sources; at most `limit`.
    Validation and test dialogues are left out, so nothing built from them has seen what is evaluated."""
    texts: list[str] = []
    for example in load_dialogue_split(spec, spec.train_split, spec.dialogue_max_train):
        texts += [example.input_text, example.target_text]
        if len(texts) >= limit:
            return texts[:limit]
    for source in spec.pretrain:
        if source.task_texts:
            continue
        rows = source_rows(spec, source, train_split_name(spec, source))
        text_of = text_reader(rows, source)
        for row in rows.rows(Skips()):
            text = text_of(row.values)
            if text is not None:
                texts.append(text)
            if len(texts) >= limit:
                return texts
    return texts
