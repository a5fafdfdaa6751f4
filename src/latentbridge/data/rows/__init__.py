"""Rows of one dataset split, read as a stream, with every row that cannot be used counted where it is.

    split_rows(location, field, split, hf_cache_dir, subset) -> RowSource
        .columns()     the column names (of the first row that parses, for JSON Lines)
        .count()       positions in the split (rows, bad ones included): a pass over local files, len() on the hub
        .rows(skips)   Row(position, values, file, line) for each row that parses; the others go to `skips`
    Skips              rows left out, per reason, and per user file with the 1-based lines of the first few

Local JSON Lines, CSV and text files are read here, line by line, rather than by `datasets`' json/csv
builders: those abort the whole file on one malformed line and name positions in a temporary repaired
copy. Here a malformed JSON line or CSV row, or a line that is not valid UTF-8, is skipped and reported
with its line number in the user's own file, and nothing is copied or cached. Parquet files are read in
batches with pyarrow; hub datasets through `datasets` (from its local cache when the hub is unreachable).

The modules, one concern each: `skips` (what was left out, and where), `row_source` (a split's rows: the
`RowSource` protocol), `local` (local JSON Lines, JSON arrays, CSV, text and Parquet files), `hub` (hub
datasets, from the local cache when the hub is unreachable), `locate` (a location and split name to its
rows). Import the public names from here.
"""

from latentbridge.data.rows.hub import HUB_NAME, LOCAL_HINT, HubRows, open_hub_dataset
from latentbridge.data.rows.local import LOCAL_EXTENSIONS, LocalRows
from latentbridge.data.rows.locate import SPLIT_ALIASES, local_files, pick_split, split_names, split_rows
from latentbridge.data.rows.row_source import Row, RowSource
from latentbridge.data.rows.skips import FIRST_LINES, MAX_JSON_DEPTH, REASONS, Skips

__all__ = [
    "FIRST_LINES", "HUB_NAME", "HubRows", "LOCAL_EXTENSIONS", "LOCAL_HINT", "LocalRows", "MAX_JSON_DEPTH", "REASONS",
    "Row", "RowSource", "SPLIT_ALIASES", "Skips", "local_files", "open_hub_dataset", "pick_split", "split_names",
    "split_rows",
]
