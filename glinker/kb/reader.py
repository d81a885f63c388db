"""Reading and validating entity rows from JSONL files (plain or gzip), lists and dicts.

Each bad row is either an error naming the file, line and field (``on_error="raise"``) or a
:class:`~glinker.errors.Reject` with the same information (``on_error="skip"``); valid rows are never dropped.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from ..errors import KnowledgeBaseError
from ..untrusted import size_problem

MAX_NAME_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 100_000
MAX_ALIASES = 10_000
MAX_LINE_BYTES = 64 * 1024 * 1024
FLOAT32_MAX = 3.4028234663852886e38
KNOWN_FIELDS = ("entity_id", "label", "aliases", "description", "entity_type", "popularity")
VECTOR_FIELDS = ("embedding", "embedding_model_id")

OnError = Literal["raise", "skip"]
EntitySource = str | Path | Iterable[Mapping] | Mapping  # a .jsonl(.gz) path, a list of dicts or a dict of dicts


@dataclass(slots=True)
class EntityRow:
    entity_id: str
    label: str
    aliases: list[str]
    description: str
    entity_type: str
    popularity: int
    metadata: dict[str, Any]
    embedding: list[float] | None = None
    embedding_model_id: str | None = None


class RowError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def iter_raw_rows(source: EntitySource) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(source name, line or item number, parsed object or RowError)`` for every row."""
    if isinstance(source, (str, Path)):
        yield from _iter_file(Path(source))
    elif isinstance(source, Mapping):
        for number, (key, value) in enumerate(source.items(), start=1):
            if isinstance(value, Mapping):
                value = {"entity_id": key, **value}
            yield "dict", number, value
    elif isinstance(source, Iterable):
        for number, value in enumerate(source, start=1):
            yield "list", number, value
    else:
        raise KnowledgeBaseError(
            f"entities must be a .jsonl(.gz) path, a list of dicts or a dict of dicts, got {type(source).__name__}"
        )


def _iter_file(path: Path) -> Iterator[tuple[str, int, Any]]:
    if not path.exists():
        raise KnowledgeBaseError(f"entity file not found: {path}")
    if path.is_dir():
        raise KnowledgeBaseError(f"{path} is a directory; open a kb_dir with EntityStore.open")
    opener = gzip.open if path.suffix == ".gz" else open
    name = str(path)
    try:
        with opener(path, "rb") as handle:
            number = 0
            while line := handle.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):
                        line = handle.readline(MAX_LINE_BYTES + 1)
                    yield name, number, RowError("<line>", f"line longer than {MAX_LINE_BYTES} bytes")
                    continue
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                line = line.strip()
                if not line:
                    continue
                try:
                    yield name, number, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield name, number, RowError("<json>", f"invalid JSON or UTF-8: {exc}")
    except (OSError, EOFError, zlib.error) as exc:
        raise KnowledgeBaseError(f"{path}: cannot read: {exc}") from exc


def _text(obj: Mapping, field: str, required: bool, max_chars: int) -> str:
    value = obj.get(field)
    if value is None:
        if required:
            raise RowError(field, "required field is missing")
        return ""
    if not isinstance(value, str):
        raise RowError(field, f"expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError(field, "must not be empty")
    if len(value) > max_chars:
        raise RowError(field, f"longer than {max_chars} characters")
    if "\x00" in value:
        raise RowError(field, "contains a NUL character")
    if not value.isascii() and not _encodable(value):
        raise RowError(field, "contains a lone surrogate (not valid Unicode text)")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_row(obj: Any) -> EntityRow:
    """Validate one decoded row; raise :class:`RowError` naming the field on failure."""
    if isinstance(obj, RowError):
        raise obj
    if not isinstance(obj, Mapping):
        raise RowError("<row>", f"expected a JSON object, got {type(obj).__name__}")
    entity_id = _text(obj, "entity_id", True, MAX_NAME_CHARS)
    label = _text(obj, "label", True, MAX_NAME_CHARS)
    aliases = _aliases(obj.get("aliases"))
    popularity = _popularity(obj.get("popularity"))
    embedding = _embedding(obj.get("embedding"))
    model_id = obj.get("embedding_model_id")
    if model_id is not None and not isinstance(model_id, str):
        raise RowError("embedding_model_id", "expected a string")
    metadata = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS and k not in VECTOR_FIELDS}
    if metadata:
        _check_metadata(metadata)
    return EntityRow(
        entity_id=entity_id,
        label=label,
        aliases=[a for a in aliases if a.strip()],
        description=_text(obj, "description", False, MAX_DESCRIPTION_CHARS),
        entity_type=_text(obj, "entity_type", False, MAX_NAME_CHARS),
        popularity=popularity,
        metadata=metadata,
        embedding=embedding,
        embedding_model_id=model_id,
    )


def _aliases(aliases: Any) -> list[str]:
    if aliases is None:
        return []
    if not isinstance(aliases, list):
        raise RowError("aliases", f"expected a list of strings, got {type(aliases).__name__}")
    if len(aliases) > MAX_ALIASES:
        raise RowError("aliases", f"more than {MAX_ALIASES} aliases")
    for alias in aliases:
        if not isinstance(alias, str):
            raise RowError("aliases", f"expected a list of strings, found {type(alias).__name__}")
        if len(alias) > MAX_NAME_CHARS:
            raise RowError("aliases", f"an alias is longer than {MAX_NAME_CHARS} characters")
        if "\x00" in alias:
            raise RowError("aliases", "an alias contains a NUL character")
        if not alias.isascii() and not _encodable(alias):
            raise RowError("aliases", "an alias contains a lone surrogate (not valid Unicode text)")
    return aliases


def _popularity(popularity: Any) -> int:
    if popularity is None:
        return 0
    if isinstance(popularity, float) and popularity.is_integer():
        popularity = int(popularity)
    if isinstance(popularity, bool) or not isinstance(popularity, int):
        raise RowError("popularity", f"expected an integer, got {type(popularity).__name__}")
    if not -(2**63) <= popularity < 2**63:
        raise RowError("popularity", "out of the 64-bit integer range")
    return popularity


def _embedding(embedding: Any) -> list[float] | None:
    if embedding is None:
        return None
    if not isinstance(embedding, list) or not embedding:
        raise RowError("embedding", "expected a non-empty list of numbers")
    for value in embedding:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RowError("embedding", f"expected numbers, found {type(value).__name__}")
        if not abs(value) <= FLOAT32_MAX:
            raise RowError("embedding", "contains NaN or infinity, or a number beyond the float32 range")
    return embedding


def _check_metadata(metadata: dict[Any, Any]) -> None:
    """Extra fields are kept as JSON: string names, JSON-serialisable values of at most a line's bytes
    (Python rows can repeat one long string by reference, as YAML aliases do)."""
    for key, value in metadata.items():
        if problem := size_problem(value, f"field {key!r}", MAX_LINE_BYTES, MAX_LINE_BYTES, MAX_LINE_BYTES):
            raise RowError(str(key), problem)
    try:
        orjson.dumps(metadata)
    except TypeError:
        for key, value in metadata.items():
            if not isinstance(key, str) or not _encodable(key):
                raise RowError("<row>", f"field name {key!r} is not a valid string") from None
            try:
                orjson.dumps(value)
            except TypeError as exc:
                raise RowError(key, f"not storable as JSON: {exc}") from None
