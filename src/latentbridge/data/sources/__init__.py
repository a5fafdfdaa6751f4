"""The examples a cache is built from: (input text -> target text) pairs, read as streams.

Everything here yields plain `Example`s (id, source, input text, target text) through `SplitStream`s,
which read their rows lazily (data/rows/) and count what they leave out, so a split of any size
passes through in constant memory. The orchestration layer builds a `DataSpec` (data_specs.py); nothing here
reads the config module.

    dialogue:  (dialogue -> summary)                  split names from the spec (train/validation/test);
               columns named by `Columns` (fields, or a template for the input), else found by name
    pretrain:  document -> (segment A -> segment B)   split at a sentence boundary near the middle;
               sources without a validation split give `validation_fraction` of their documents to it.
               A `task_texts` source takes its documents from the dialogue dataset itself: every input
               and target text of its train (validation) split.

Pretraining sources are combined by `datasets.interleave_datasets`: with weights, each example comes
from a source drawn with probability proportional to its weight (seeded) until one source runs out;
without weights (the three seed-004 sources), round-robin until all are used.

The modules, one concern each: `streams` (Example, SplitStream), `dialogue` (columns and examples of the
dialogue dataset), `pretrain` (documents split into pairs), `mix` (interleaving the pretraining sources),
`collection` (a collection's splits, the texts for tiny models), `checks` (--mode doctor's look at the data).
Import the public names from here.
"""

from latentbridge.data.data_specs import Columns, DataSpec, PretrainSource
from latentbridge.data.sources.checks import SplitCheck, check_dialogue_data, check_pretrain_source
from latentbridge.data.sources.collection import load_collection, training_texts
from latentbridge.data.sources.dialogue import (DIALOGUE_FIELDS, INPUT_FLAG, SUMMARY_FIELDS, TARGET_FLAG, TEMPLATE_FLAG,
                                                ColumnPlan, dialogue_columns, load_dialogue_split, plan_columns,
                                                split_location)
from latentbridge.data.sources.mix import mix_order, pretrain_split
from latentbridge.data.sources.pretrain import (TEXT_FIELDS, TaskTexts, load_pretrain_source, pretrain_parts,
                                                split_document, text_column)
from latentbridge.data.sources.streams import Example, SplitStream

__all__ = [
    "ColumnPlan", "Columns", "DIALOGUE_FIELDS", "DataSpec", "Example", "INPUT_FLAG", "PretrainSource", "SUMMARY_FIELDS",
    "SplitCheck", "SplitStream", "TARGET_FLAG", "TEMPLATE_FLAG", "TEXT_FIELDS", "TaskTexts", "check_dialogue_data",
    "check_pretrain_source", "dialogue_columns", "load_collection", "load_dialogue_split", "load_pretrain_source",
    "mix_order", "plan_columns", "pretrain_parts", "pretrain_split", "split_document", "split_location",
    "text_column", "training_texts",
]
