"""``glinker render``: one self-contained HTML page showing linked documents.

Mentions are highlighted in the colour of their type (from L1; a legend at the top lists every type
with its colour) and tagged with it; hovering shows the entity's label, id, score and description,
and each linked mention links to its entry in the entity list at the end of the page. Relations
between mentions (a pipeline with ``l5_relex``) are listed under their document as
head → relation → tail with their score. Every piece
of text that comes from a document or the KB is HTML-escaped, so neither can inject markup.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import orjson

from .pipeline import Linker
from .reader import Doc, InputOptions, check_options, iter_items, open_input

UNTYPED = "(no type)"
TITLE_DESCRIPTION_CHARS = 300
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; line-height: 1.7; color: #222; }
article { border-bottom: 1px solid #ddd; padding: 1rem 0; white-space: pre-wrap; }
h2 { font-size: 1rem; color: #555; white-space: normal; }
mark { padding: 0.1em 0.25em; border-radius: 0.3em; }
mark a { color: inherit; text-decoration: none; }
mark.unlinked { background: #eee !important; border: 1px dashed #999; }
mark .tag { font-size: 0.7em; font-weight: bold; margin-left: 0.4em; color: #444; }
.legend mark { margin-right: 0.6em; }
ol.relations { white-space: normal; font-size: 0.9em; } .relation { font-style: italic; color: #555; }
dt { font-weight: bold; margin-top: 0.6rem; } dd { margin-left: 1.5rem; } code { color: #666; }
"""


def type_colours(types: list[str]) -> dict[str, str]:
    """One colour per type, hues evenly spaced around the wheel (pastel, so text stays readable);
    types in sorted order, so a page's colours depend only on its set of types."""
    ordered = sorted(set(types))
    return {t: f"hsl({round(360 * i / len(ordered))}, 85%, {78 if i % 2 else 84}%)" for i, t in enumerate(ordered)}


def _attr(text: str) -> str:
    return escape(text, quote=True).replace("\n", "&#10;")


def _mention(text: str, entity: dict[str, Any], anchors: dict[str, int], kb_info: dict[str, dict],
             css_class: str) -> str:
    surface = escape(text)
    tag = f'<span class="tag">{escape(entity.get("label") or UNTYPED)}</span>'
    if entity.get("entity_id") is None:
        title = f"unlinked mention ({entity.get('label') or 'no label'})"
        return f'<mark class="{css_class} unlinked" title="{_attr(title)}">{surface}{tag}</mark>'
    entity_id = entity["entity_id"]
    info = kb_info.get(entity_id, {})
    description = info.get("description") or ""
    if len(description) > TITLE_DESCRIPTION_CHARS:
        description = description[:TITLE_DESCRIPTION_CHARS] + "…"
    title = f"{entity['entity_label']} ({entity_id})\nscore {entity['score']}\n{description}".rstrip()
    anchor = anchors.setdefault(entity_id, len(anchors))
    return f'<mark class="{css_class}" title="{_attr(title)}"><a href="#e-{anchor}">{surface}</a>{tag}</mark>'


def _relation_end(end: dict[str, Any], anchors: dict[str, int]) -> str:
    surface = escape(end["text"])
    if end.get("entity_id") is None:
        return f"{surface} <code>(unlinked)</code>"
    return f'<a href="#e-{anchors.setdefault(end["entity_id"], len(anchors))}">{surface}</a>'


def _relations(relations: list[dict[str, Any]], anchors: dict[str, int]) -> str:
    """A document's relations, as ``glinker link`` writes them, one list item each."""
    if not relations:
        return ""
    items = "".join(
        f'<li>{_relation_end(r["head"], anchors)} → <span class="relation">{escape(r["relation"])}</span> → '
        f'{_relation_end(r["tail"], anchors)} <code>{r["score"]}</code></li>'
        for r in relations
    )
    return f'<ol class="relations">{items}</ol>'


def render_page(docs: list[tuple[Any, str, list[dict[str, Any]]]], kb_info: dict[str, dict], title: str = "glinker",
                relations: list[list[dict[str, Any]]] | None = None) -> str:
    """HTML for ``(id, text, entities)`` triples (entities as ``glinker link`` writes them); ``relations``:
    per document, the relations of its ``glinker link`` line."""
    colours = type_colours([e.get("label") or UNTYPED for _, _, entities in docs for e in entities])
    css_class = {t: f"t{i}" for i, t in enumerate(colours)}
    anchors: dict[str, int] = {}
    articles = []
    for k, (doc_id, text, entities) in enumerate(docs):
        parts, position = [], 0
        for entity in sorted(entities, key=lambda e: (e["start"], -e["end"])):
            if entity["start"] < position:  # overlaps the previous mention: shown in the entity list only
                continue
            parts.append(escape(text[position:entity["start"]]))
            kind = css_class[entity.get("label") or UNTYPED]
            parts.append(_mention(text[entity["start"]:entity["end"]], entity, anchors, kb_info, kind))
            position = entity["end"]
        parts.append(escape(text[position:]))
        parts.append(_relations(relations[k] if relations else [], anchors))
        articles.append(f"<article><h2>{escape(str(doc_id))}</h2>{''.join(parts)}</article>")
    listing = []
    for entity_id, anchor in anchors.items():
        info = kb_info.get(entity_id, {})
        listing.append(f'<dt id="e-{anchor}">{escape(info.get("label", entity_id))} <code>{escape(entity_id)}</code>'
                       f'</dt><dd>{escape(info.get("description") or "")}</dd>')
    rules = "".join(f"mark.{css_class[t]} {{ background: {colour}; }}\n" for t, colour in colours.items())
    legend = "".join(f'<mark class="{css_class[t]}">{escape(t)}</mark>' for t in colours)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}{rules}</style></head><body><h1>{escape(title)}</h1>"
            f'<section class="legend"><h2>Types</h2>{legend}</section>{"".join(articles)}'
            f"<section><h2>Entities</h2><dl>{''.join(listing)}</dl></section></body></html>\n")


def render(config: str | Path, kb: str | Path, input_path: str | Path, output: str | Path,
           reader: InputOptions | None = None, limit: int = 50, device: str | None = None) -> dict[str, int]:
    """Link the first ``limit`` documents of ``input_path`` and write the page to ``output``."""
    reader = reader or InputOptions()
    check_options(reader)
    docs: list[Doc] = []
    rejected = 0
    stream, raw = open_input(input_path)
    try:
        for item, _, _ in iter_items(stream, reader):
            if len(docs) >= limit:
                break
            if isinstance(item, Doc):
                docs.append(item)
            elif item is not None:
                rejected += 1
    finally:
        stream.close()
        raw.close()
    linker = Linker(config, kb, device=device, max_text_chars=reader.max_text_chars)
    result = linker.link([d.id for d in docs], [d.text for d in docs])
    store = linker.executor.kb.store
    triples, relations, kb_info = [], [], {}
    for doc, line in zip(docs, result.lines, strict=True):
        record = orjson.loads(line)
        entities = record["entities"]
        relations.append(record.get("relations", []))
        for e in entities:
            if e["entity_id"] is not None and e["entity_id"] not in kb_info:
                row = store.row_of(e["entity_id"])
                kb_info[e["entity_id"]] = store.fields(row) if row is not None else {}
        triples.append((doc.id, doc.text, entities))
    page = render_page(triples, kb_info, title=f"glinker: {Path(input_path).name}", relations=relations)
    Path(output).write_text(page, encoding="utf-8")
    return {"docs": len(docs), "mentions": result.mentions, "linked": result.linked, "rejected": rejected}
