"""Text templates over a row's columns: Python format strings such as "{title}\\n{body}".

Stdlib only: the config validates templates with `template_fields` (so `--help` stays light), the data
layer and `infer` render them with `render_template`.
"""

from __future__ import annotations

import string
from typing import Any, Collection, Mapping, Optional

from latentbridge.errors import UserError


def template_fields(template: str) -> list[str]:
    """The column names `template` uses, in order of first use.

    ValueError (with a readable reason) for a malformed format string, a positional field (`{}`, `{0}`),
    an attribute or index (`{row.x}`, `{row[0]}`), or a template that uses no column at all.
    """
    names: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):  # ValueError on unbalanced braces
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValueError("every {} must name a column, e.g. {body}")
        if any(c in name for c in ".[]"):
            raise ValueError(f"{{{name}}} is not a plain column name (no attributes or indexes)")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("it uses no column; name at least one, e.g. {body}")
    return names


def require_fields(template: str, available: Collection[str], where: str, flag: str, has: str) -> None:
    """UserError naming `where`, the missing names, `flag` and `has` (what there is) when the template uses a
    column that is not `available`."""
    missing = [n for n in template_fields(template) if n not in available]
    if missing:
        raise UserError(f"{where} has no {', '.join(map(repr, missing))}, used by {flag} {template!r}; {has}.")


def render_template(template: str, row: Mapping[str, Any]) -> Optional[str]:
    """The template filled with the row's values; None when a column it uses is missing or null."""
    values = {}
    for name in template_fields(template):
        value = row.get(name)
        if value is None:
            return None
        values[name] = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return template.format_map(values)
