"""Text helpers shared by layers: windows over long texts, abbreviation definitions."""

from __future__ import annotations

import re
from collections.abc import Iterator

_BREAKS = ("\n\n", "\n", ". ", "; ", ", ", " ")


def char_windows(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """Cut ``text`` into pieces of at most ``max_chars``, preferring paragraph, sentence, then word
    boundaries. Yields ``(offset, piece)``; the pieces concatenate back to ``text``."""
    start = 0
    while len(text) - start > max_chars:
        limit = start + max_chars
        cut = -1
        for sep in _BREAKS:
            pos = text.rfind(sep, start + max_chars // 2, limit)
            if pos != -1:
                cut = pos + len(sep)
                break
        if cut <= start:
            cut = limit
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


_PAREN = re.compile(r"\(\s*([^()\s][^()]{0,9}?)\s*\)")
_WORD = re.compile(r"\S+")


def abbreviations(text: str) -> dict[str, str]:
    """Short forms defined in the text as ``long form (SF)`` mapped to their long form.

    The Schwartz-Hearst rule: every character of the short form appears, in order, in the long form,
    its first character starting a word; the long form has at most ``min(len(SF) + 5, 2 * len(SF))`` words.
    """
    found: dict[str, str] = {}
    for match in _PAREN.finditer(text):
        short = match.group(1)
        if not (2 <= len(short) <= 10) or not any(c.isalpha() for c in short) or not short[0].isalnum():
            continue
        if len(short.split()) > 2:
            continue
        words = _WORD.findall(text[max(0, match.start() - 300) : match.start()])
        window = words[-min(len(short) + 5, 2 * len(short)) :]
        long_form = _best_long_form(short, " ".join(window))
        if long_form and short not in found:
            found[short] = long_form
    return found


def _best_long_form(short: str, candidate: str) -> str | None:
    s_idx, l_idx = len(short) - 1, len(candidate) - 1
    while s_idx >= 0:
        ch = short[s_idx].lower()
        if not ch.isalnum():
            s_idx -= 1
            continue
        while l_idx >= 0 and (
            candidate[l_idx].lower() != ch or (s_idx == 0 and l_idx > 0 and candidate[l_idx - 1].isalnum())
        ):
            l_idx -= 1
        if l_idx < 0:
            return None
        s_idx -= 1
        l_idx -= 1
    start = candidate.rfind(" ", 0, l_idx + 1) + 1
    long_form = candidate[start:].strip(" ,;:")
    if len(long_form) <= len(short) or long_form.lower().startswith(short.lower() + " "):
        return None
    return long_form
