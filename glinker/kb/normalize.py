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


# Suffixes stripped (longest first) so that inflected and derived forms share a stem:
# "tumours"/"tumor", "hypertensive"/"hypertension", "ischemic"/"ischemia", "necrotic"/"necrosis".
_SUFFIXES = ("ational", "ations", "ation", "ically", "ities", "ical", "ives", "ions", "osis", "oses", "otic",
             "ity", "ive", "ion", "ics", "ias", "ies", "ic", "ia", "al", "es", "s", "y", "e")
_SPELLING = (("ae", "e"), ("oe", "e"), ("our", "or"), ("tre", "ter"))
_MIN_STEM = 4


def stem(token: str) -> str:
    """A light, deterministic stem (British spellings folded, one suffix stripped)."""
    for old, new in _SPELLING:
        token = token.replace(old, new)
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= _MIN_STEM:
            return token[: -len(suffix)]
    return token


def canonical_name(normalized: str) -> str:
    """Word-order free, stemmed form of a normalised name: "Neoplasms, Breast" == "breast neoplasm"."""
    return " ".join(sorted(stem(t) for t in normalized.split() if len(t) > 1))
