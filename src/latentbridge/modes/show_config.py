"""`--mode config`: the resolved config with each value's source, as a table, JSON or YAML.

The table also shows the precision the run computes in next to the flags that ask for it (use_bf16,
use_fp16), from models/precision.py's rule; without torch it cannot ask a GPU for bf16, so on a GPU it
says what decides (`--mode doctor` resolves it on this machine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentbridge.config import Config, field_meta, field_names, short_repr
from latentbridge.config_sources import format_config, write_config_file
from latentbridge.models.precision import effective_precision
from latentbridge.modes import ModeOptions, RunResult, located_by_default

if TYPE_CHECKING:
    from rich.table import Table

PRECISION_ROW = "precision (effective)"  # shown after use_bf16
VALUE_LIMIT = 120  # longer values are cut in the table; --format json/yaml prints them in full


def run(config: Config, options: ModeOptions) -> RunResult:
    if options.save_config is not None:
        # folders left to their default or preset are where runs go, not one run's folder: a saved config that
        # named them would make every training from it land on the same folder (docs/pipeline.md, "Run folders")
        write_config_file(config, str(options.save_config), leave_out=located_by_default(options.sources))
    if options.format == "table":
        from rich.console import Console  # only the table needs rich: JSON and YAML output stay lighter

        Console().print(config_table(config, options.sources))
    else:
        print(format_config(config, options.format), end="")
    return RunResult("config")


def config_table(config: Config, sources: dict[str, str]) -> Table:
    """Every field under its section's heading: name, value, source (bold when not the default). Sections are
    heading rows rather than a column, so that at 80 columns the value and the source keep room to be read."""
    from rich.table import Table  # see run(): only the table needs rich

    table = Table(title="Resolved configuration", show_lines=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", min_width=14, overflow="fold")
    table.add_column("source", min_width=12, overflow="fold")
    section = None
    for name in field_names():
        if field_meta(name)["section"] != section:
            section = field_meta(name)["section"]
            table.add_row(f"[bold magenta]{section}[/]", "", "", end_section=False)
        source = sources.get(name, "default")
        style = None if source == "default" else "bold"
        table.add_row(name, short_repr(getattr(config, name), VALUE_LIMIT), source, style=style)
        if len(repr(getattr(config, name))) > VALUE_LIMIT:
            table.caption = f"values over {VALUE_LIMIT} characters are cut: --format json or yaml shows them in full"
        if name == "use_bf16":
            table.add_row(PRECISION_ROW, effective_precision_text(config), "device, use_bf16, use_fp16")
    return table


def effective_precision_text(c: Config) -> str:
    """What the run computes in: exact on a CPU; on a GPU it depends on the device's bf16 support."""
    if c.device == "cpu":
        precision, note = effective_precision(c.use_bf16, c.use_fp16, "cpu", bf16_supported=False)
        return precision + (f" ({note.removeprefix('precision: ')})" if note else "")
    with_bf16 = effective_precision(c.use_bf16, c.use_fp16, c.device, bf16_supported=True)[0]
    if with_bf16 == "fp32":
        return "fp32"
    return f"bf16 on a device with bf16, else fp32 ({c.device}; --mode doctor checks this machine)"
