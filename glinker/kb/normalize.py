"""Name normalisation shared by the KB name index, the gazetteer and queries.

A name is split into word tokens (runs of letters and digits); each token is folded (Unicode
compatibility decomposition, accents dropped, case folded). The normalised name is the folded
tokens joined by single spaces, so "Crohn's Disease", "crohn s  disease" and "CROHN’S-disease" agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

WORD = re.compile(r"[^\W_]+")


def fold(token: str) -> str:
    """Compatibility-decompose, drop combining marks, casefold."""
    if token.isascii():
        return token.lower()
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def tokens_with_offsets(text: str) -> Iterator[tuple[str, int, int]]:
    """Folded word tokens of ``text`` with their character offsets in ``text``."""
    for match in WORD.finditer(text):
        folded = fold(match.group())
        if folded:
            yield folded, match.start(), match.end()


def normalize_name(text: str) -> str:
    return " ".join(fold(t) for t in WORD.findall(text) if t)
