"""The click CLI latentbridge had before it became a Typer app, kept for bench/bench_cli.py's comparison only.

A copy of src/latentbridge/cli.py as of issue 13 (one click command, options generated from the Config
fields, plain help grouped by section). Run: python bench/click_cli.py --mode config --format json
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from latentbridge.config import PRESET_HELP, PRESETS, Config, base_type, field_meta, field_names, field_types, is_optional
from latentbridge.config_sources import resolve_config
from latentbridge.errors import UserError
from latentbridge.modes import MODE_MODULES, ModeOptions, run as run_mode

RUN_SECTION = "Mode and sources"
FORMATS = ("table", "json", "yaml")
DESCRIPTION = ("latentbridge: a latent-space text-to-text pipeline (ModernBERT -> latents -> middle transformer -> "
               "prefix adapter -> Gemma). Values layer as defaults < --preset < --config files < "
               "LATENTBRIDGE_<FIELD> environment < flags.")
_PATH = click.Path(path_type=Path)


class SectionOption(click.Option):
    """A click option that remembers the help section it is listed under."""

    def __init__(self, decls: list[str], *, section: str, **kwargs: Any) -> None:
        super().__init__(decls, **kwargs)
        self.section = section


def _run_option(flag: str, help: str, **kwargs: Any) -> SectionOption:
    return SectionOption([flag], section=RUN_SECTION, help=help, **kwargs)


def mode_options() -> list[SectionOption]:
    """The options that choose what to run and on what; they are not Config fields."""
    presets = "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
    return [
        _run_option("--mode", "What to run.", type=click.Choice(list(MODE_MODULES)), default="train",
                    show_default=True),
        _run_option("--preset", f"Start from a preset: {presets}.", metavar="[" + "|".join(PRESETS) + "]"),
        _run_option("--config", "JSON or YAML file of field values; may repeat, later files win.", multiple=True,
                    metavar="FILE"),
        _run_option("--format", "--mode config: output format.", type=click.Choice(FORMATS), default="table",
                    show_default=True),
        _run_option("--save-config", "--mode config: also write the resolved config here (.json, .yaml).",
                    type=_PATH),
        _run_option("--resume", "--mode train: continue from the latest step checkpoint (auto) or from PATH.",
                    metavar="auto|PATH"),
        _run_option("--checkpoint", "--mode infer/eval: model file to load (default: "
                    "checkpoint_dir/handoff_best_model_filename).", type=_PATH),
        _run_option("--text", "--mode infer: the text to transform.", metavar="TEXT"),
        _run_option("--input-file", "--mode infer: one text per line, or jsonl with a dialogue or text field; "
                    "`-` streams standard input: one answer per line, flushed as each line is read.", type=_PATH),
        _run_option("--output-file", "--mode infer/eval: write results here (jsonl/json).", type=_PATH),
        _run_option("--split", "--mode eval: dataset split (default: test_split).", metavar="SPLIT"),
        _run_option("--baselines", "--mode eval: also score the baselines.", is_flag=True, default=False),
        _run_option("--memory-gb", "--mode doctor: list the batch sizes, precisions and checkpointing choices "
                    "that fit this many GiB.", type=click.FloatRange(min=0.01), metavar="GIB"),
    ]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def field_option(name: str) -> SectionOption:
    """The option of one Config field; its value stays text (None when not given) until config_sources converts it."""
    annotation = field_types()[name]
    kind = base_type(annotation)
    meta = field_meta(name)
    help_text = f"{meta['help']}. [default: {_default_text(name)}]"
    if kind is bool:
        return SectionOption([f"{flag_name(name)}/--no-{name.replace('_', '-')}"], section=meta["section"],
                             help=help_text, default=None)
    metavar = "|".join(meta["choices"]) if meta["choices"] else kind.__name__.upper()
    if is_optional(annotation):
        metavar += "|none"
    return SectionOption([flag_name(name)], section=meta["section"], help=help_text, metavar=metavar)


def _default_text(name: str) -> str:
    value = Config.__dataclass_fields__[name].default
    return "none" if value is None else str(value)


def _run(mode: str, preset: Optional[str], config: tuple[str, ...], **values: Any) -> None:
    """Resolve the config from every source, run the mode, exit with its code (2 for a UserError)."""
    mode_values = {f.name: values.pop(f.name) for f in dataclasses.fields(ModeOptions) if f.name != "sources"}
    cli_values = {name: value for name, value in values.items() if value is not None}
    try:
        resolved = resolve_config(preset, list(config), cli_values=cli_values)
        for warning in resolved.warnings:
            click.echo(f"Warning: {warning}", err=True)
        code = run_mode(resolved.config, mode, sources=resolved.sources, **mode_values).exit_code
    except UserError as error:
        click.echo(f"Error: {error}", err=True)
        code = error.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    click.get_current_context().exit(code)


class SectionedCommand(click.Command):
    """Click's plain help, grouped by Config section. Rich-rendered help took 0.29 s for ~130 options
    (twice the budget of the `--help` bench), so the light formatter is kept."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                sections.setdefault(getattr(param, "section", "Options"), []).append(record)
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)


def build_command() -> click.Command:
    """The command with one option per mode parameter and per Config field."""
    params = [*mode_options(), *(field_option(name) for name in field_names())]
    return SectionedCommand("latentbridge", callback=_run, params=params, help=DESCRIPTION,
                            context_settings={"help_option_names": ["-h", "--help"]})


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (kill, a scheduler's preemption) stops any mode like Ctrl-C: exit 130, partial files cleaned up.
    # The training loop installs its own handler that checkpoints first.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    build_command().main(prog_name=Path(sys.argv[0]).name or "latentbridge")


if __name__ == "__main__":
    main()
