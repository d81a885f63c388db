"""Training data: annotated documents (text + character-offset mentions), word windows, and KB names.

Every row or mention that cannot be used goes to the rejects file with its line number; nothing is
dropped silently. Offsets are character offsets into the document text, kept through chunking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KnowledgeBaseError, Reject
from ..kb.reader import EntityRow, RowError, iter_raw_rows, parse_row
from ..templates import render_template
from .config import ChunkingSection, DataSection, FieldsSection

NIL = "NIL"
# GLiNER's whitespace word splitter: words, hyphen/underscore compounds, or one other character.
WORD = re.compile(r"\w+(?:[-_]\w+)*|\S")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str
    entity_id: str | None  # None: not linked to the KB (NIL or not given)


@dataclass(slots=True)
class Doc:
    source: str
    line: int
    text: str
    spans: list[Span]


@dataclass(slots=True)
class Window:
    """``max_words`` words of a document: word offsets and the mentions that lie inside, as word indices."""

    doc: Doc
    words: list[str]
    offsets: list[tuple[int, int]]
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (first word, last word, label)


class Rejects:
    """Rejected rows and mentions (``glinker.errors.Reject``), written as JSON lines when a path is given."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: list[Reject] = []

    def add(self, source: str, line: int, field_name: str, reason: str) -> None:
        self.rows.append(Reject(line=line, reason=reason, source=source, field=field_name))

    def flush(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"".join(r.to_json() for r in self.rows))


def read_docs(path: Path, split: str | list[str] | None, data: DataSection, rejects: Rejects,
              limit: int | None = None) -> list[Doc]:
    """The annotated documents of ``split`` (one name, a list of names, or all when None); bad rows and
    mentions go to ``rejects``. A row without a split field belongs to every split."""
    splits = [split] if isinstance(split, str) else split
    docs = []
    for source, line, obj in iter_raw_rows(path):
        if isinstance(obj, RowError):
            rejects.add(source, line, obj.field, obj.reason)
            continue
        if splits is not None and isinstance(obj, dict) and obj.get(data.fields.split, splits[0]) not in splits:
            continue
        doc = _doc(source, line, obj, data, rejects)
        if doc is not None:
            docs.append(doc)
            if limit is not None and len(docs) == limit:
                break
    if not docs:
        raise KnowledgeBaseError(f"{path}: no usable document{f' in split {split!r}' if split else ''} "
                                 f"({len(rejects.rows)} rejected)")
    return docs


def _doc(source: str, line: int, obj: Any, data: DataSection, rejects: Rejects) -> Doc | None:
    f = data.fields
    text = obj.get(f.text) if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text.strip():
        rejects.add(source, line, f.text, "missing or empty text")
        return None
    mentions = obj.get(f.mentions, [])
    if not isinstance(mentions, list):
        rejects.add(source, line, f.mentions, "must be a list of mention objects")
        return None
    spans = []
    for i, raw in enumerate(mentions):
        span = _span(raw, len(text), f, data.default_label)
        if isinstance(span, str):
            rejects.add(source, line, f"{f.mentions}[{i}]", span)
        else:
            spans.append(span)
    return Doc(source, line, text, spans)


def _span(raw: Any, length: int, f: FieldsSection, default_label: str) -> Span | str:
    """A mention, or the reason it is rejected."""
    if not isinstance(raw, dict):
        return "not an object"
    start, end = raw.get(f.start), raw.get(f.end)
    if type(start) is not int or type(end) is not int:
        return f"{f.start!r} and {f.end!r} must be integers"
    if not 0 <= start < end <= length:
        return f"span {start}:{end} is outside the text (length {length})"
    label = raw.get(f.label, default_label)
    if not isinstance(label, str) or not label.strip():
        return f"{f.label!r} must be a non-empty string"
    entity_id = raw.get(f.entity_id)
    entity_id = entity_id if isinstance(entity_id, str) and entity_id and entity_id != NIL else None
    return Span(start, end, label, entity_id)


def word_spans(doc: Doc, spans: list[tuple[int, int]], rejects: Rejects,
               task: str) -> tuple[list[tuple[int, int]], list[tuple[int, int] | None]]:
    """GLiNER's words of ``doc`` (character offsets) and the first and last word of each character span;
    None, and a reject naming the span, when its edges are not word edges."""
    offsets = [(m.start(), m.end()) for m in WORD.finditer(doc.text)]
    starts = {s: i for i, (s, _) in enumerate(offsets)}
    ends = {e: i for i, (_, e) in enumerate(offsets)}
    out: list[tuple[int, int] | None] = []
    for start, end in spans:
        first, last = starts.get(start), ends.get(end)
        if first is None or last is None:
            rejects.add(doc.source, doc.line, "mentions", f"span {start}:{end} {doc.text[start:end]!r} does not start "
                        f"and end on word boundaries (GLiNER words); skipped for {task} training")
            out.append(None)
        else:
            out.append((first, last))
    return offsets, out


def windows(doc: Doc, chunking: ChunkingSection, rejects: Rejects) -> list[Window]:
    """The document as word windows; a mention whose edges are not word edges is rejected (named)."""
    offsets, words = word_spans(doc, [(s.start, s.end) for s in doc.spans], rejects, "NER")
    aligned = [(*w, s.label) for w, s in zip(words, doc.spans, strict=True) if w is not None]
    size = chunking.max_words if chunking.enabled else max(len(offsets), 1)
    step = chunking.stride if chunking.enabled else size
    out = []
    for begin in range(0, max(len(offsets) - size, 0) + 1, step):
        stop = min(begin + size, len(offsets))
        inside = [(a - begin, b - begin, label) for a, b, label in aligned if a >= begin and b < stop]
        out.append(Window(doc, [doc.text[s:e] for s, e in offsets[begin:stop]], offsets[begin:stop], inside))
        if stop == len(offsets):
            break
    return out


@dataclass(slots=True)
class KBEntity:
    entity_id: str
    names: list[str]  # label first, then aliases; distinct
    text: str  # the entity rendered with the template
    entity_type: str
    parents: list[str]


def read_kb(path: Path, template: str, rejects: Rejects, parent_field: str = "parent_ids") -> list[KBEntity]:
    """The KB's entities (glinker's entity JSONL); bad rows go to ``rejects``."""
    entities = []
    for source, line, obj in iter_raw_rows(path):
        try:
            if isinstance(obj, RowError):
                raise obj
            row = parse_row(obj)
        except RowError as err:
            rejects.add(source, line, err.field, err.reason)
            continue
        entities.append(_kb_entity(row, template, parent_field))
    if not entities:
        raise KnowledgeBaseError(f"{path}: no usable entity ({len(rejects.rows)} rejected)")
    return entities


def _kb_entity(row: EntityRow, template: str, parent_field: str) -> KBEntity:
    fields = {**row.metadata, "entity_id": row.entity_id, "label": row.label, "aliases": row.aliases,
              "description": row.description, "entity_type": row.entity_type, "popularity": row.popularity}
    names = list(dict.fromkeys(n for n in [row.label, *row.aliases] if n.strip()))
    parents = row.metadata.get(parent_field) or []
    return KBEntity(row.entity_id, names, render_template(template, fields), row.entity_type,
                    [p for p in parents if isinstance(p, str)])


def gold_mentions(docs: list[Doc]) -> Iterator[tuple[str, str]]:
    """``(mention text, gold entity id)`` of every linked mention."""
    for doc in docs:
        for span in doc.spans:
            if span.entity_id is not None:
                yield doc.text[span.start:span.end], span.entity_id
