"""Where config values come from, and the one precedence that layers them.

defaults < --preset < --config FILE (each in order) < LATENTBRIDGE_<FIELD> environment < CLI flags.

Values from files, the environment and the command line are converted by the field's type with one
grammar, so `5e-5` means the same float everywhere and `none` clears an Optional field anywhere.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from latentbridge.config import (
    PRESETS,
    Config,
    ConfigError,
    Problem,
    base_type,
    closest_field,
    did_you_mean,
    field_names,
    field_types,
    is_optional,
    type_phrase,
)
from latentbridge.errors import UserError
from latentbridge.files import write_text_atomic
from latentbridge.pretrain_mix import file_problem as mix_file_problem

ENV_PREFIX = "LATENTBRIDGE_"
PYTHON_SOURCE = "python"  # the source of values given from Python (load_config, latentbridge.run)
_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}
_NONE = {"none", "null", "~", ""}


@dataclass(frozen=True)
class ResolvedConfig:
    """The config plus, for each field, the source that set it ('default', 'preset tiny', a file, ...)."""

    config: Config
    sources: dict[str, str]
    warnings: tuple[str, ...] = ()  # legal but almost surely unintended inputs (an empty config file)


def resolve_config(
    preset: Optional[str] = None,
    config_files: Sequence[str] = (),
    environ: Optional[Mapping[str, str]] = None,
    cli_values: Optional[Mapping[str, Any]] = None,
    cli_source: str = "command line",
) -> ResolvedConfig:
    """Layer every source in precedence order, convert, validate, and report all problems at once.
    `cli_source` names the last layer in messages (`load_config` passes PYTHON_SOURCE)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = {name: "default" for name in field_names()}
    problems: list[Problem] = []
    layers = [_preset_layer(preset)] if preset else []
    files = [_file_layer(path) for path in config_files]
    empty = tuple(f"Config file {source} (--config) is empty: it sets no field." for raw, source in files if raw is None)
    layers += [*files, _env_layer(environ), (dict(cli_values or {}), cli_source)]
    for raw, source in layers:
        for name, value in (raw or {}).items():
            if name not in field_names():  # an unknown file key: reported with every bad value, not alone
                problems.append(Problem(name, value, f"a Config field name{did_you_mean(name)}, as listed by "
                                        "`python main.py --mode config`"))
                sources[name] = source
                continue
            converted, problem = convert_value(name, value)
            if problem:
                problems.append(problem)
            else:
                values[name] = converted
            sources[name] = source
    try:
        config = Config(**values)
    except ConfigError as error:
        reported = {p.field for p in problems}
        problems += [p for p in error.problems if p.field not in reported]
    else:
        problems += _file_problems(config)
    if problems:
        raise ConfigError(problems, sources)
    return ResolvedConfig(config, sources, empty)


def _file_problems(config: Config) -> list[Problem]:
    """Files the user named that cannot be read, found before any work starts. Config itself does not check
    them: infer and eval rebuild the saved config of a model whose training files may be gone."""
    why = mix_file_problem(config.pretrain_mix) if config.pretrain_mix is not None else None
    return [Problem("pretrain_mix", config.pretrain_mix, f"a readable mix file ({why})")] if why else []


def load_config(preset: Optional[str] = None, files: Sequence[str | Path] = (), **overrides: Any) -> Config:
    """A Config from Python, with the CLI's precedence: defaults < `preset` < `files` (JSON/YAML, later wins)
    < `overrides` (field=value, as Python values or as the text a flag takes). The environment is not read.
    Mistakes raise ConfigError (a UserError) naming every bad field at once."""
    unknown = [Problem(name, value, f"a Config field{did_you_mean(name)}") for name, value in overrides.items()
               if name not in field_names()]
    if unknown:
        raise ConfigError(unknown)
    resolved = resolve_config(preset, [str(f) for f in files], environ={}, cli_values=overrides,
                              cli_source=PYTHON_SOURCE)
    for warning in resolved.warnings:
        warnings.warn(warning, stacklevel=2)
    return resolved.config


def convert_value(name: str, raw: Any) -> tuple[Any, Optional[Problem]]:
    """Convert `raw` (a string from env/CLI, or a parsed JSON/YAML value) to the field's type."""
    annotation = field_types()[name]
    kind = base_type(annotation)
    optional = is_optional(annotation)
    expected = type_phrase(kind) + (" or none" if optional else "")
    if kind is int:
        expected += " (a whole number in digits, such as 32)"
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE and kind is not str):
        return (None, None) if optional else (raw, Problem(name, raw, f"{type_phrase(kind)}, not none"))
    if isinstance(raw, str) and kind is str and optional and raw.strip().lower() in _NONE - {""}:
        return None, None
    try:
        return _convert(kind, raw), None
    except (TypeError, ValueError):
        return raw, Problem(name, raw, expected)


def _convert(kind: type, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE and not isinstance(raw, (int, float)):
            return text in _TRUE
        raise ValueError(raw)
    if isinstance(raw, bool) or isinstance(raw, (list, dict)):
        raise TypeError(raw)
    if kind is int:
        # Digits only: a float (1e30 or 32.0 in a file, `1e3` as text) is refused rather than rounded into a
        # huge or surprising int.
        if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().lstrip("+-").isdigit()):
            return int(raw)
        raise ValueError(raw)
    if kind is float:
        return float(raw)
    return str(raw)


def _preset_layer(name: str) -> tuple[dict[str, Any], str]:
    if name not in PRESETS:
        raise UserError(f"Unknown preset {name!r} (--preset): expected one of {', '.join(PRESETS)}.")
    return dict(PRESETS[name]), f"preset {name}"


def _file_layer(path: str) -> tuple[Optional[dict[str, Any]], str]:
    """The file's values (None for an empty file); keys that are not Config fields are refused by resolve_config,
    together with the bad values of every source."""
    return read_config_file(path), str(path)


def read_config_file(path: str) -> Optional[dict[str, Any]]:
    """A flat mapping of field -> value from a .json, .yaml or .yml file (UTF-8); None when it holds nothing."""
    file = Path(path)
    kind = file.suffix.lower().lstrip(".")
    if kind not in ("json", "yaml", "yml"):
        raise UserError(f"Config file {path} (--config): expected a .json, .yaml or .yml file.")
    text = _read_utf8(file, path)
    if not text.strip():
        return None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys) if kind == "json" else _load_yaml(text)
    except ValueError as error:
        raise UserError(f"Config file {path} (--config) is not valid {'JSON' if kind == 'json' else 'YAML'}: "
                        f"{error}") from None
    if data is not None and not isinstance(data, dict):
        raise UserError(f"Config file {path} (--config): expected a mapping of field names to values, "
                        f"found a {type(data).__name__}.")
    return data


def _read_utf8(file: Path, path: str) -> str:
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise UserError(f"Config file {path} (--config) cannot be read: {error.strerror}.") from None
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not content
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise UserError(f"Config file {path} (--config) is not UTF-8 text: byte 0x{raw[error.start]:02x} on line "
                        f"{line} cannot be decoded. Save it as UTF-8, the encoding of JSON and YAML files.") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a key given twice is an error, not a silent "later wins"."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"the key(s) {', '.join(map(repr, repeated))} appear more than once; keep one of each")
    return dict(pairs)


def _load_yaml(text: str) -> Any:
    import yaml  # only YAML files need it; --help stays lighter

    try:
        return yaml.load(text, Loader=_unique_key_loader(yaml))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(", ".join(filter(None, [error.context, error.problem])) + where) from None
    except yaml.YAMLError as error:
        raise ValueError(str(error).replace("\n", " ")) from None


@functools.cache
def _unique_key_loader(yaml: Any) -> type:
    """PyYAML's SafeLoader, refusing a mapping key given twice: YAML 1.2 forbids it, PyYAML keeps the last."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears more than once (YAML forbids it); keep one",
                        key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    values, unknown = {}, []
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in field_names():
            values[name] = value
        else:
            close = closest_field(name)
            unknown.append(key + (f" (did you mean {env_var(close)}?)" if close else ""))
    if unknown:
        raise UserError(f"Unknown environment variable(s): {'; '.join(unknown)}. Variables named "
                        f"{ENV_PREFIX}<FIELD> set Config fields; unset the others.")
    return values, "environment"


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def write_config_file(config: Config, path: str, leave_out: Sequence[str] = ()) -> None:
    """Write the config as JSON or YAML (by extension), atomically, loadable with --config; without the fields
    `leave_out` (they then take their defaults when the file is read)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise UserError(f"Cannot write the config to {path} (--save-config): expected a .json, .yaml or .yml file "
                        f"name, the formats --config reads back (not {suffix or 'a name without an extension'}).")
    text = format_config(config, "yaml" if suffix in (".yaml", ".yml") else "json", leave_out)
    try:
        write_text_atomic(file, text)
    except OSError as error:
        raise UserError(f"Cannot write the config to {path} (--save-config): {error.strerror}.") from None


def format_config(config: Config, fmt: str, leave_out: Sequence[str] = ()) -> str:
    values = {k: v for k, v in config.to_dict().items() if k not in leave_out}
    if fmt == "json":
        return json.dumps(values, indent=2) + "\n"
    import yaml  # only YAML output needs it; --help stays lighter

    return yaml.safe_dump(values, sort_keys=False)
