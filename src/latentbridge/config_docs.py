"""Generate docs/configuration.md from the Config fields: `python -m latentbridge.config_docs [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path

from latentbridge.config import PRESET_HELP, PRESETS, Config, base_type, describe_bounds, field_meta, field_names, field_types
from latentbridge.config_sources import env_var

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

_INTRO = """# Configuration reference

Generated from `src/latentbridge/config.py` by `python -m latentbridge.config_docs`; do not edit by hand (a test fails
when this file is stale).

Every field can be set, from lowest to highest precedence, by its default, a preset
(`--preset tiny`), a config file (`--config run.yaml`, JSON or YAML, repeatable, later wins), an
environment variable (`LATENTBRIDGE_<FIELD>`) and a command-line flag. Values from files, the
environment and flags are converted by the field's type: `5e-5` is a float, bools accept
true/false/yes/no/on/off/1/0, and `none` clears an Optional field. `python main.py --mode config`
shows the resolved value of each field and where it came from.
"""


def render() -> str:
    lines = [_INTRO, "## Presets", ""]
    lines += [f"- `{name}`: {PRESET_HELP[name]} ({len(PRESETS[name])} fields changed)." for name in PRESETS]
    section = None
    for name in field_names():
        meta = field_meta(name)
        if meta["section"] != section:
            section = meta["section"]
            lines += ["", f"## {section}", "",
                      "| field | flag | env var | type | default | allowed | help |",
                      "|---|---|---|---|---|---|---|"]
        lines.append(_row(name, meta))
    return "\n".join(lines) + "\n"


def _row(name: str, meta: dict) -> str:
    annotation = field_types()[name]
    kind = base_type(annotation).__name__
    type_text = f"Optional[{kind}]" if annotation is not base_type(annotation) else kind
    default = Config.__dataclass_fields__[name].default
    flag = f"`--{name.replace('_', '-')}`"
    if kind == "bool":
        flag = f"`--{name.replace('_', '-')}` / `--no-{name.replace('_', '-')}`"
    allowed = ", ".join(f"`{c}`" for c in meta["choices"]) or describe_bounds(name)
    return (f"| `{name}` | {flag} | `{env_var(name)}` | {type_text} | `{default}` | {allowed} | "
            f"{meta['help']} |")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else ""
        if current != text:
            print(f"{DOCS_PATH} is stale: run `python -m latentbridge.config_docs`.", file=sys.stderr)
            return 1
        return 0
    DOCS_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
