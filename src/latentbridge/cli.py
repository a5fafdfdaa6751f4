"""The command line: a Typer app whose one command takes every `Config` field as an option.

The options are generated from the dataclass fields (an `inspect.Signature` of `typer.Option`s built from
`field_meta`), so adding a field to `Config` is the only step to get its flag: `--kebab-case`, bools as
`--x/--no-x`, each listed in the Rich help panel of its section, the mode options in their own panel first.
Config values stay text here and are converted by src/latentbridge/config_sources.py, the grammar of config
files and environment variables, so all mistakes are reported together. Each mode runs through
latentbridge.modes.run, which imports its module only then: `--help`, `--mode config` and shell completion
never import torch.

`app` is a plain Typer app: another Typer program mounts it with `add_typer(latentbridge.cli.app)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import signal
import sys
import typing
from pathlib import Path
from typing import IO, Any, Callable, Literal, Optional

import typer
# Typer ships its own copy of click as typer._click (no click dependency since 0.2x): these are click's API there.
from typer._click import Context, HelpFormatter
from typer._click.core import ParameterSource
from typer._click.exceptions import NoSuchOption
from typer.core import TyperCommand

from latentbridge.config import (PRESET_HELP, PRESETS, Config, base_type, describe_bounds, field_meta, field_names,
                                 field_types, is_optional)
from latentbridge.config_sources import resolve_config
from latentbridge.errors import UserError
from latentbridge.modes import MODE_MODULES, OPTION_NAMES, ModeOptions, run as run_mode

PROG_NAME = "latentbridge"  # also under `python main.py`: one help text, one completion variable
RUN_PANEL = "Mode and sources"
HELP_PANEL = "Help and shell completion"  # Typer's own options, listed after the Config's sections
DESCRIPTION = ("latentbridge: a latent-space text-to-text pipeline (encoder -> latents -> middle transformer -> "
               "prefix adapter -> decoder). Values layer as defaults < --preset < --config files < "
               "LATENTBRIDGE_<FIELD> environment < flags.")


def _completer(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Shell completion of a value that stays text until config_sources checks it (presets, choice fields)."""

    def complete(incomplete: str) -> list[str]:
        return [choice for choice in choices if choice.startswith(incomplete)]

    return complete


def _parameter(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _run_option(name: str, annotation: Any, help: str, default: Any = None, **extra: Any) -> inspect.Parameter:
    option = typer.Option(default, "--" + name.replace("_", "-"), help=help, rich_help_panel=RUN_PANEL, **extra)
    return _parameter(name, annotation, option)


def mode_parameters() -> list[inspect.Parameter]:
    """The options that choose what to run and on what, then those of ModeOptions; none is a Config field."""
    presets = "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
    return [
        _run_option("mode", Literal[tuple(MODE_MODULES)], f"What to run: {', '.join(MODE_MODULES)}.", "train",
                    show_default=True, metavar="MODE"),
        _run_option("preset", Optional[str], f"Start from a preset: {presets}.", metavar="|".join(PRESETS),
                    autocompletion=_completer(tuple(PRESETS))),
        _run_option("config", Optional[list[Path]], "JSON or YAML file of field values; may repeat, later files win.",
                    metavar="FILE"),
        *(mode_option_parameter(name) for name in OPTION_NAMES),
    ]


def mode_option_parameter(name: str) -> inspect.Parameter:
    """The flag of one ModeOptions field, from the help and settings its field declares (modes/__init__.py)."""
    spec = next(f for f in dataclasses.fields(ModeOptions) if f.name == name)
    flag = dict(spec.metadata["flag"])
    choices = flag.pop("choices", None)
    annotation = Literal[choices] if choices else typing.get_type_hints(ModeOptions)[name]
    return _run_option(name, annotation, spec.metadata["help"], spec.default, **flag)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def field_parameter(name: str) -> inspect.Parameter:
    """The option of one Config field, showing the field's default; its value stays text until config_sources
    converts it, so a bad value is reported with every other problem, naming its source."""
    annotation = field_types()[name]
    kind = base_type(annotation)
    meta = field_meta(name)
    bounds = describe_bounds(name)
    default = Config.__dataclass_fields__[name].default
    allowed = f" (allowed: {bounds})" if bounds else ""
    common = {"help": meta["help"] + allowed + ".", "rich_help_panel": meta["section"],
              "show_default": "none" if default is None else True}
    if kind is bool:
        flags = f"{flag_name(name)}/--no-{name.replace('_', '-')}"
        return _parameter(name, Optional[bool], typer.Option(default, flags, **common))
    metavar = "|".join(meta["choices"]) if meta["choices"] else kind.__name__.upper()
    if is_optional(annotation):
        metavar += "|none"
    completion = _completer(meta["choices"]) if meta["choices"] else None
    option = typer.Option(default, flag_name(name), metavar=metavar, autocompletion=completion, **common)
    return _parameter(name, Optional[str], option)


def _run(ctx: typer.Context, mode: str, preset: Optional[str], config: Optional[list[Path]], **values: Any) -> None:
    """Resolve the config from every source, run the mode, exit with its result's code (2 for a UserError)."""
    mode_values = {name: values.pop(name) for name in OPTION_NAMES}
    # Only flags given on the command line are a source; an option's shown default is the Config's own.
    cli_values = {name: value for name, value in values.items()
                  if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    try:
        resolved = resolve_config(preset, [str(path) for path in config or ()], cli_values=cli_values)
        for warning in resolved.warnings:
            typer.echo(f"Warning: {warning}", err=True)
        code = run_mode(resolved.config, mode, sources=resolved.sources, **mode_values).exit_code
    except UserError as error:
        typer.echo(f"Error: {error}", err=True)
        code = error.exit_code
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        code = 130
    raise typer.Exit(code)


def is_styled_terminal(stream: IO[str]) -> bool:
    """Rich panels for a person at a terminal; plain text for pipes, files, NO_COLOR and TERM=dumb."""
    interactive = hasattr(stream, "isatty") and stream.isatty()
    return interactive and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class GeneratedCommand(TyperCommand):
    """Typer's command, with its help and errors in Rich only on a styled terminal, and a did-you-mean that
    names the closest option only."""

    # Typer draws help and usage errors in Rich panels while a markup mode is set, so each output sets it for the
    # stream it goes to: panels for a person at a styled terminal, plain lines for pipes and files.
    def main(self, *args: Any, **kwargs: Any) -> Any:
        self.rich_markup_mode = "rich" if is_styled_terminal(sys.stderr) else None  # usage errors
        return super().main(*args, **kwargs)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self.rich_markup_mode = "rich" if is_styled_terminal(sys.stdout) else None
        super().format_help(ctx, formatter)  # plain: click's layout, sections from format_options

    def get_params(self, ctx: Context) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if not getattr(param, "rich_help_panel", None):
                param.rich_help_panel = HELP_PANEL
        return params

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The plain help: one section per Rich panel, in the order of the parameters."""
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                sections.setdefault(param.rich_help_panel, []).append(record)
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as error:
            # click lists every close option sorted by name (`--learning-rat` got `--training-phase` first)
            flags = [flag for param in self.get_params(ctx) for flag in (*param.opts, *param.secondary_opts)]
            closest = difflib.get_close_matches(error.option_name, flags, n=1)
            raise NoSuchOption(error.option_name, possibilities=closest, ctx=ctx) from None


def build_app() -> typer.Typer:
    """The Typer app with one command: an option per mode parameter and per Config field."""
    parameters = [*mode_parameters(), *(field_parameter(name) for name in field_names())]

    def latentbridge(ctx: typer.Context, **values: Any) -> None:
        _run(ctx, **values)

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    latentbridge.__signature__ = inspect.Signature([context, *parameters])  # type: ignore[attr-defined]
    latentbridge.__doc__ = DESCRIPTION
    app = typer.Typer(context_settings={"help_option_names": ["--help", "-h"]})
    app.command(cls=GeneratedCommand)(latentbridge)
    return app


app = build_app()


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (kill, a scheduler's preemption) stops any mode like Ctrl-C: exit 130, partial files cleaned up.
    # The training loop installs its own handler that checkpoints first.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    app(prog_name=PROG_NAME)
