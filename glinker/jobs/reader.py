"""Streaming input of a bulk job: JSONL (plain or gzip) or plain text, one document per line.

Lines are read one at a time, never the whole file. A line that is not a usable document becomes a
:class:`Reject` naming its line number and reason; the other lines are :class:`Doc` records.
Blank lines of a JSONL file are skipped; in ``txt`` format a blank line is an empty document.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import InputError, Reject
from ..inputs import DEFAULT_MAX_TEXT_CHARS

FORMATS = ("jsonl", "txt")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class InputOptions:
    """How documents are read from an input file."""

    format: str = "jsonl"
    text_field: str = "text"
    id_field: str = "id"
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS

    @property
    def max_line_bytes(self) -> int:
        # a JSON string escape (\uXXXX) takes up to six bytes per character
        return 6 * self.max_text_chars + 65_536


@dataclass(slots=True)
class Doc:
    line: int
    id: Any
    text: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """Up to ``batch_size`` documents, the rejects between them, and where the input stands after them."""

    items: list[Doc | Reject]
    end_line: int
    end_offset: int

    @property
    def docs(self) -> list[Doc]:
        return [item for item in self.items if isinstance(item, Doc)]

    @property
    def rejects(self) -> list[Reject]:
        return [item for item in self.items if isinstance(item, Reject)]


def check_options(options: InputOptions) -> None:
    if options.format not in FORMATS:
        raise InputError(f"unknown input format {options.format!r}; expected one of {', '.join(FORMATS)}")
    if not options.text_field or not options.id_field:
        raise InputError("--text-field and --id-field must not be empty")
    if options.max_text_chars < 1:
        raise InputError(f"--max-text-chars must be at least 1, got {options.max_text_chars}")


def open_input(path: str | Path) -> tuple[BinaryIO, BinaryIO]:
    """``(stream of decompressed bytes, underlying file)``; the file's position tracks progress."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input not found or not a file: {path}")
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the returned stream
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def _preview(line: bytes) -> str:
    return line[:200].decode("utf-8", errors="replace").rstrip("\r\n")


def parse_line(line: bytes, number: int, options: InputOptions) -> Doc | Reject | None:
    """One input line as a document, a reject, or None (a blank JSONL line)."""
    if number == 1 and line.startswith(BOM):
        line = line[len(BOM):]
    if options.format == "txt":
        try:
            text = line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject(number, f"invalid UTF-8 at byte {exc.start}", _preview(line))
        if len(text) > options.max_text_chars:
            return Reject(number, f"text has {len(text)} characters, more than the limit {options.max_text_chars}", _preview(line))
        return Doc(number, number, text)
    if not line.strip():
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Reject(number, f"invalid JSON or UTF-8: {exc}", _preview(line))
    if not isinstance(record, dict):
        return Reject(number, f"expected a JSON object, got {type(record).__name__}", _preview(line))
    text = record.get(options.text_field)
    if text is None:
        return Reject(number, f"missing field {options.text_field!r}", _preview(line))
    if not isinstance(text, str):
        return Reject(number, f"field {options.text_field!r} must be a string, got {type(text).__name__}", _preview(line))
    if len(text) > options.max_text_chars:
        return Reject(number, f"field {options.text_field!r} has {len(text)} characters, more than the limit "
                      f"{options.max_text_chars}", _preview(line))
    doc_id = record.get(options.id_field)
    if doc_id is None:
        doc_id = number
    elif isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        return Reject(number, f"field {options.id_field!r} must be a string or an integer, got {type(doc_id).__name__}",
                      _preview(line))
    return Doc(number, doc_id, text, record)


def iter_items(stream: BinaryIO, options: InputOptions, start_line: int = 0,
               start_offset: int = 0) -> Iterator[tuple[Doc | Reject | None, int, int]]:
    """Yield ``(item, line number, offset after the line)`` from ``stream`` positioned at ``start_offset``."""
    number, offset = start_line, start_offset
    limit = options.max_line_bytes
    while True:
        line = stream.readline(limit)
        if not line:
            return
        number += 1
        offset += len(line)
        if len(line) == limit and not line.endswith(b"\n"):
            head = line
            while line and not line.endswith(b"\n"):
                line = stream.readline(limit)
                offset += len(line)
            yield Reject(number, f"line longer than {limit} bytes", _preview(head)), number, offset
            continue
        yield parse_line(line, number, options), number, offset


def iter_batches(stream: BinaryIO, options: InputOptions, batch_size: int, start_line: int = 0,
                 start_offset: int = 0, limit: int | None = None) -> Iterator[Batch]:
    """Group the input into batches of ``batch_size`` documents (rejects ride along in line order).

    ``limit`` stops after that many records (documents and rejects). Batches depend only on the input and ``batch_size``, so a
    job resumed at a batch boundary forms the same batches as an uninterrupted one.
    """
    items: list[Doc | Reject] = []
    docs = 0
    line, offset = start_line, start_offset
    remaining = limit
    for item, number, end in iter_items(stream, options, start_line, start_offset):
        if remaining is not None and remaining <= 0:
            break
        line, offset = number, end
        if item is None:
            continue
        items.append(item)
        if remaining is not None:
            remaining -= 1
        if isinstance(item, Doc):
            docs += 1
            if docs == batch_size:
                yield Batch(items, line, offset)
                items, docs = [], 0
    if items:
        yield Batch(items, line, offset)
