"""Finding every KB name in texts (used by the l1_dictionary layer and by L2 when no mentions are given)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..text import abbreviations as find_abbreviations
from ..text import short_form_pattern
from ..types import Mention
from .base import KnowledgeBase
from .names import MAX_NAME_TOKENS, NameMatch
from .normalize import normalize_name

# Common English words that are also names in many KBs ("AS", "IS", "All" ...); never matched by default.
DEFAULT_STOP_WORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "also", "may", "might", "must", "shall", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "new", "use", "used", "using", "may", "per", "via", "well"]
)

FIRST_ROWS = 1024  # name rows of a match looked at before all of them (most matches are decided there)


class Gazetteer:
    """Longest-match lookup of KB names in text, with length, stop-word, type and acronym-case filters.

    With ``canonical_tokens`` > 0, windows of up to that many tokens also match in canonical form
    ("hypertensive" ~ "Hypertension"). Names of more than ``max_name_tokens`` tokens are not looked
    for. With ``abbreviations``, a short form defined in the text as
    "long form (SF)" follows its long form: when the long form is a KB name, every occurrence of the
    short form is a mention; when it is not, a KB acronym equal to the short form is not one (it
    means something else in this text).
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        min_chars: int = 3,
        stop_words: Iterable[str] = (),
        use_default_stop_words: bool = True,
        entity_types: Iterable[str] | None = None,
        canonical_tokens: int = 0,
        abbreviations: bool = True,
        max_name_tokens: int = MAX_NAME_TOKENS,
    ):
        self.kb = kb
        self.min_chars = min_chars
        self.stop = {normalize_name(w) for w in stop_words}
        if use_default_stop_words:
            self.stop |= DEFAULT_STOP_WORDS
        self.entity_types = set(entity_types) if entity_types else None
        self.canonical_tokens = canonical_tokens
        self.abbreviations = abbreviations
        self.max_name_tokens = max_name_tokens
        self._facts: tuple = (None, -1)

    def find(self, text: str, left_chars: int = 50, right_chars: int = 50,
             defined: Mapping[str, str] | None = None) -> list[Mention]:
        """Mentions of KB names in ``text``; ``defined``: its abbreviations, when already found."""
        index = self.kb.name_index()
        matches = index.scan(text, min_chars=self.min_chars, max_tokens=self.max_name_tokens,
                             canonical_tokens=self.canonical_tokens)
        if self.abbreviations:
            matches = self._follow_abbreviations(text, matches, find_abbreviations(text) if defined is None else defined)
        mentions = []
        for match in matches:
            entity_type = self._accepted(text[match.start : match.end], match)
            if entity_type is not None:
                mentions.append(Mention.from_span(text, match.start, match.end, label=entity_type or None,
                                                  left_chars=left_chars, right_chars=right_chars))
        return mentions

    def _accepted(self, surface: str, match: NameMatch) -> str | None:
        """The entity type of the first acceptable entity of a match ("" if untyped), or None to drop it:
        no name of an acceptable entity has a compatible case (see :func:`_acronym_code`), or the surface
        is a stop word and none is an acronym. Decided with numpy over the match's name rows, the first
        ``FIRST_ROWS`` of them first."""
        accept, codes, letters = self._row_facts()
        need_acronym = normalize_name(surface) in self.stop
        wanted = letters.get(_letters(surface), -1)
        first_type, compatible, acronym = None, False, False
        for part in (slice(0, FIRST_ROWS), slice(FIRST_ROWS, None)):
            name_rows = match.name_rows[part]
            entity_rows = self.kb.name_index().entities_of(name_rows)
            ok = accept[entity_rows]
            found = codes[name_rows[ok]]
            if first_type is None and ok.any():
                first_type = self.kb.store.types[int(entity_rows[ok.argmax()])]
            compatible = compatible or bool(((found == 0) | (found == wanted)).any())
            acronym = acronym or bool((found != 0).any())
            if compatible and (acronym or not need_acronym):
                break
        if not compatible or (need_acronym and not acronym):
            return None
        return first_type

    def _row_facts(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """For the KB as it is: which entity rows may match (alive, of an accepted type), the acronym code of
        every name row, and the codes of acronym letters; computed once per KB version."""
        store = self.kb.store
        if self._facts[:2] != (store, store.version):
            accept = np.array(store.alive, dtype=bool)
            if self.entity_types is not None:
                accept &= np.fromiter((t in self.entity_types for t in store.types.tolist()), bool, store.num_rows)
            letters: dict[str, int] = {}
            codes = np.fromiter((_acronym_code(name, letters) for name in store.names.tolist()), np.int64,
                                len(store.names))
            self._facts = (store, store.version, accept, codes, letters)
        return self._facts[2:]

    def _follow_abbreviations(self, text: str, matches: list[NameMatch], defined: Mapping[str, str]) -> list[NameMatch]:
        index = self.kb.name_index()
        if not defined:
            return matches
        long_rows = {}
        for short, long_form in defined.items():
            key = index.exact(long_form)
            rows = index.name_rows(key) if key is not None else index.canonical(long_form)
            long_rows[short] = rows
        kept = [m for m in matches if text[m.start : m.end] not in defined or len(long_rows[text[m.start : m.end]])]
        taken = [(m.start, m.end) for m in kept]
        for short, rows in long_rows.items():
            if not len(rows):
                continue
            for occurrence in short_form_pattern([short]).finditer(text):
                start, end = occurrence.span()
                if not any(s < end and start < e for s, e in taken):
                    kept.append(NameMatch(start, end, rows, exact=False))
                    taken.append((start, end))
        kept.sort(key=lambda m: m.start)
        return kept


def _is_acronym(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and len(name) <= 5 and all(c.isupper() for c in letters)


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalpha())


def _acronym_code(name: str, letters: dict[str, int]) -> int:
    """0 for a name that is not an acronym, else the code of its letters (added to ``letters``). Short
    all-capital names (acronyms such as "AS" or "ALL") only match the same capitals in text, and are
    then kept even when the lower-case word is a stop word; other names match in any case."""
    if len(name) > 5 or not _is_acronym(name):
        return 0
    return letters.setdefault(_letters(name), len(letters) + 1)
