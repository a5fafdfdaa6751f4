"""The command line: one Typer command whose options are generated from the `Config` fields.

Every field becomes `--kebab-case` (bools as `--x/--no-x`). Config flags are parsed as text and
converted by src/latentbridge/config_sources.py, the same grammar as config files and environment variables, so
all mistakes are reported together. Each mode runs through latentbridge.modes.run, which imports its
module only then: `--help` and `--mode config` never import torch.
"""

from __future__ import annotations

import inspect
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import click
import typer
from typer.core import TyperCommand

from latentbridge.config import (PRESET_HELP, PRESETS, Config, base_type, field_meta, field_names, field_types,
                                 is_optional)
from latentbridge.config_sources import resolve_config
from latentbridge.errors import UserError
from latentbridge.modes import MODE_MODULES, run as run_mode


Mode = Enum("Mode", {name: name for name in MODE_MODULES}, type=str)  # --mode's choices


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


_RUN_PANEL = "Mode and sources"
_MODE_PARAMETERS = [
    ("mode", Mode, typer.Option(Mode["train"], "--mode", help="What to run.", rich_help_panel=_RUN_PANEL)),
    ("preset", Optional[str], typer.Option(
        None, "--preset", rich_help_panel=_RUN_PANEL, metavar="[" + "|".join(PRESETS) + "]",
        help="Start from a preset: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()) + ".")),
    ("config", Optional[list[Path]], typer.Option(
        None, "--config", rich_help_panel=_RUN_PANEL,
        help="JSON or YAML file of field values; may repeat, later files win.")),
    ("format", OutputFormat, typer.Option(
        OutputFormat.table, "--format", rich_help_panel=_RUN_PANEL, help="--mode config: output format.")),
    ("save_config", Optional[Path], typer.Option(
        None, "--save-config", rich_help_panel=_RUN_PANEL,
        help="--mode config: also write the resolved config here (.json, .yaml)")),
    ("resume", Optional[str], typer.Option(
        None, "--resume", rich_help_panel=_RUN_PANEL, metavar="auto|PATH",
        help="--mode train: continue from the latest step checkpoint (auto) or from PATH.")),
    ("checkpoint", Optional[Path], typer.Option(
        None, "--checkpoint", rich_help_panel=_RUN_PANEL,
        help="--mode infer/eval: model file to load (default: checkpoint_dir/handoff_best_model_filename).")),
    ("text", Optional[str], typer.Option(
        None, "--text", rich_help_panel=_RUN_PANEL, help="--mode infer: the text to transform.")),
    ("input_file", Optional[Path], typer.Option(
        None, "--input-file", rich_help_panel=_RUN_PANEL,
        help="--mode infer: one text per line, or jsonl with a dialogue or text field.")),
    ("output_file", Optional[Path], typer.Option(
        None, "--output-file", rich_help_panel=_RUN_PANEL, help="--mode infer/eval: write results here (jsonl/json).")),
    ("split", Optional[str], typer.Option(
        None, "--split", rich_help_panel=_RUN_PANEL, help="--mode eval: dataset split (default: test_split).")),
    ("baselines", bool, typer.Option(
        False, "--baselines", rich_help_panel=_RUN_PANEL, help="--mode eval: also score the baselines.")),
    ("memory_gb", Optional[float], typer.Option(
        None, "--memory-gb", rich_help_panel=_RUN_PANEL, min=0.01,
        help="--mode doctor: list the batch sizes, precisions and checkpointing choices that fit this many GiB.")),
]
_MODE_OPTION_NAMES = [name for name, _, _ in _MODE_PARAMETERS if name not in ("mode", "preset", "config")]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _field_parameter(name: str) -> inspect.Parameter:
    """The Typer option of one Config field; its value stays text until config_sources converts it."""
    annotation = field_types()[name]
    kind = base_type(annotation)
    meta = field_meta(name)
    default = _default_text(name)
    help_text = f"{meta['help']}. [default: {default}]"
    if kind is bool:
        option = typer.Option(None, f"{flag_name(name)}/--no-{name.replace('_', '-')}", help=help_text,
                              rich_help_panel=meta["section"], show_default=False)
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[bool])
    metavar = "|".join(meta["choices"]) if meta["choices"] else kind.__name__.upper()
    if is_optional(annotation):
        metavar += "|none"
    option = typer.Option(None, flag_name(name), help=help_text, metavar=metavar,
                          rich_help_panel=meta["section"], show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[str])


def _default_text(name: str) -> str:
    value = Config.__dataclass_fields__[name].default
    return "none" if value is None else str(value)


def _run(**kwargs: Any) -> None:
    mode = kwargs.pop("mode")
    preset: Optional[str] = kwargs.pop("preset")
    files = [str(p) for p in kwargs.pop("config") or []]
    mode_options = {name: kwargs.pop(name) for name in _MODE_OPTION_NAMES}
    cli_values = {name: value for name, value in kwargs.items() if value is not None}
    try:
        resolved = resolve_config(preset, files, cli_values=cli_values)
        code = run_mode(mode.value, resolved.config, sources=resolved.sources, **_plain(mode_options))
    except UserError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items()}


class SectionedCommand(TyperCommand):
    """Click's plain help, grouped by Config section. Rich-rendered help took 0.29 s for ~130
    options (twice the budget of the `--help` bench), so the light formatter is kept."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)


def build_app() -> typer.Typer:
    """The Typer app with one option per mode parameter and per Config field."""
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                  for name, kind, option in _MODE_PARAMETERS]
    parameters += [_field_parameter(name) for name in field_names()]

    def command(**kwargs: Any) -> None:
        _run(**kwargs)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = ("latentbridge: a latent-space text-to-text pipeline (ModernBERT -> latents -> "
                       "middle transformer -> prefix adapter -> Gemma). Values layer as defaults < --preset "
                       "< --config files < LATENTBRIDGE_<FIELD> environment < flags.")
    app = typer.Typer(add_completion=False, rich_markup_mode=None,
                      context_settings={"help_option_names": ["-h", "--help"]})
    app.command(cls=SectionedCommand)(command)
    return app


def main() -> None:
    build_app()(prog_name=Path(sys.argv[0]).name or "latentbridge")
