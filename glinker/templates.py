"""Templates such as ``"{label}: {description}"`` are data, never code.

Only plain field names are substituted: no attribute access, indexing, conversions or format specs,
so a template from a config cannot reach into Python objects (``"{label.__class__}"`` is refused).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .errors import ConfigError

_FORMATTER = string.Formatter()
MAX_TEMPLATE_CHARS = 10_000


@lru_cache(maxsize=256)
def parse_template(template: str) -> tuple[tuple[str, str | None], ...]:
    """Split a template into (literal, field name or None) pieces; refuse anything but plain names."""
    if not isinstance(template, str):
        raise ConfigError(f"template must be a string, got {type(template).__name__}")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ConfigError(f"template has {len(template):,} characters, more than {MAX_TEMPLATE_CHARS:,}")
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ConfigError(f"template {template!r} is malformed: {exc}") from None
    pieces = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (not name.isidentifier() or spec or conversion):
            raise ConfigError(
                f"template {template!r}: only plain field names like {{label}} are allowed, "
                f"not {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            )
        pieces.append((literal, name))
    return tuple(pieces)


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """Fill a template from entity fields; a missing or empty field renders as nothing.

    Separators left dangling by an empty field (``"Paris: "``) are trimmed.
    """
    out = []
    for literal, name in parse_template(template):
        out.append(literal)
        if name is not None:
            value = fields.get(name)
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            out.append("" if value is None else str(value))
    return "".join(out).strip().rstrip(":;,-|").rstrip()
