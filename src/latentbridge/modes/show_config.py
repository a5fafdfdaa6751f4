"""`--mode config`: the resolved config with each value's source, as a table, JSON or YAML."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from latentbridge.config import Config, field_meta, field_names
from latentbridge.config_sources import format_config, write_config_file
from latentbridge.modes import ModeOptions


def run(config: Config, options: ModeOptions) -> int:
    if options.save_config is not None:
        write_config_file(config, str(options.save_config))
    if options.format == "table":
        Console().print(config_table(config, options.sources))
    else:
        print(format_config(config, options.format), end="")
    return 0


def config_table(config: Config, sources: dict[str, str]) -> Table:
    table = Table(title="Resolved configuration", show_lines=False)
    table.add_column("section", overflow="fold")
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    section = None
    for name in field_names():
        meta = field_meta(name)
        shown = meta["section"] if meta["section"] != section else ""
        section = meta["section"]
        source = sources.get(name, "default")
        style = None if source == "default" else "bold"
        table.add_row(shown, name, repr(getattr(config, name)), source, style=style)
    return table
