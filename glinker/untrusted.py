"""Nested data from users, read within bounds: the one YAML loader of glinker, and size checks.

Every YAML file glinker reads (pipeline configs, training configs) goes through :func:`load_yaml`:
safe tags only, at most :data:`MAX_YAML_BYTES` of file, duplicate keys refused (naming the key and
its lines), integers of more than :data:`MAX_INT_DIGITS` digits refused, and the parsed value
checked by :func:`size_problem` (YAML aliases let a few lines repeat a value millions of times).
Every problem is a :class:`ConfigError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_YAML_BYTES = 10 * 2**20
MAX_INT_DIGITS = 100
MAX_CONFIG_VALUES = 1_000_000
MAX_CONFIG_DEPTH = 100
MAX_CONFIG_TEXT_BYTES = 10 * 2**20
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _BoundedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (libyaml's parser where installed) refusing duplicate keys and integers longer
    than any setting."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # "<<: *base" keys may be overridden by the mapping's own
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader names it
                continue
            if earlier is not None:
                raise ConfigError(f"line {line}: duplicate key {key!r} (first on line {earlier})")
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isalnum() for c in node.value)
        if digits > MAX_INT_DIGITS:
            raise ConfigError(
                f"line {node.start_mark.line + 1}: an integer of {digits:,} digits; "
                f"a setting has at most {MAX_INT_DIGITS} (MAX_INT_DIGITS)"
            )
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def parse_yaml(text: str) -> Any:
    """The value of one YAML document, built by the bounded loader (a ConfigError otherwise)."""
    try:
        loader = _BoundedLoader(text)  # the reader refuses unprintable characters here
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply") from None
    problem = size_problem(data)
    if problem:
        raise ConfigError(problem)
    return data


def load_yaml(path: Path, what: str = "config") -> Any:
    """Read and parse the YAML file ``path``; ``what`` (e.g. "pipeline config") names it when it is missing."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: the file is larger than {MAX_YAML_BYTES:,} bytes, the limit for a config")
    try:
        return parse_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read the config as UTF-8 text: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def size_problem(
    data: Any,
    what: str = "the config",
    max_values: int = MAX_CONFIG_VALUES,
    max_depth: int = MAX_CONFIG_DEPTH,
    max_text_bytes: int = MAX_CONFIG_TEXT_BYTES,
) -> str | None:
    """Why ``data`` (nested mappings and lists) is larger or deeper than allowed, or None.

    Values are counted as often as they are reachable, so a string that aliases repeat counts its
    bytes each time; the walk stops at the first limit passed.
    """
    stack = [(data, 0)]
    count = text_bytes = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > max_values:
            return f"{what} holds more than {max_values:,} values (YAML aliases expanding?)"
        if depth > max_depth:
            return f"{what} is nested more than {max_depth} levels deep"
        if isinstance(value, Mapping):
            text_bytes += sum(_utf8_size(key) for key in value if isinstance(key, str))
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            text_bytes += _utf8_size(value)
        if text_bytes > max_text_bytes:
            return f"{what} holds more than {max_text_bytes:,} bytes of text"
    return None


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
