"""Validation of what users pass to ``execute``: every problem names the text index and field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError, LimitError
from .types import Mention

DEFAULT_MAX_TEXT_CHARS = 5_000_000


@dataclass
class ExecuteInput:
    """What ``execute`` reads from its input, as a config's ``$input`` source sees it."""

    texts: list[str]
    entities: list[list[Mention]] | None = None


def validate_texts(texts: Any, max_chars: int = DEFAULT_MAX_TEXT_CHARS) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InputError(f"'texts' must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}] must be a string, got {type(text).__name__}")
        if len(text) > max_chars:
            raise LimitError(
                f"texts[{i}] has {len(text):,} characters, more than max_text_chars={max_chars:,}; "
                "split the document or raise the limit (DAGExecutor(..., max_text_chars=N))"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(
                    f"texts[{i}] has a lone surrogate at character {exc.start}, which is not valid Unicode text "
                    "(decode documents with errors='replace')"
                ) from None
    return list(texts)


def validate_mentions(entities: Any, texts: list[str], context_chars: int = 50) -> list[list[Mention]]:
    """Check user-given mentions against their texts and give them context."""
    if isinstance(entities, (str, bytes)) or not isinstance(entities, Sequence):
        raise InputError(f"'entities' must be a list (one list of mentions per text), got {type(entities).__name__}")
    if len(entities) != len(texts):
        raise InputError(f"'entities' has {len(entities)} lists but 'texts' has {len(texts)} texts; they must match")
    out: list[list[Mention]] = []
    for i, (per_text, text) in enumerate(zip(entities, texts, strict=True)):
        if isinstance(per_text, (str, bytes, Mapping)) or not isinstance(per_text, Sequence):
            raise InputError(f"entities[{i}] must be a list of mentions, got {type(per_text).__name__}")
        mentions = []
        for j, item in enumerate(per_text):
            mentions.append(_mention(item, text, f"entities[{i}][{j}]", context_chars))
        out.append(mentions)
    return out


def _mention(item: Any, text: str, where: str, context_chars: int) -> Mention:
    if isinstance(item, Mention):
        fields = {"text": item.text, "start": item.start, "end": item.end, "label": item.label}
    elif isinstance(item, Mapping):
        fields = item
    else:
        raise InputError(f"{where} must be a dict with 'text', 'start', 'end', got {type(item).__name__}")
    for key in ("start", "end"):
        value = fields.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}.{key} must be an integer, got {type(value).__name__}")
    start, end = fields["start"], fields["end"]
    if not 0 <= start < end <= len(text):
        raise InputError(f"{where}: span {start}:{end} is outside the text (length {len(text)}) or empty")
    if text[start:end].isspace():
        raise InputError(f"{where}: span {start}:{end} ({text[start:end]!r}) is only whitespace; a mention needs a word")
    given = fields.get("text")
    if given is not None and given != text[start:end]:
        raise InputError(f"{where}: text {given!r} does not match the text at {start}:{end} ({text[start:end]!r})")
    label = fields.get("label")
    return Mention.from_span(
        text, start, end, label=label if isinstance(label, str) else None,
        left_chars=context_chars, right_chars=context_chars,
    )
