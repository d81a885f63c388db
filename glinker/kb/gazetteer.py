"""Finding every KB name in texts (used by the l1_dictionary layer and by L2 when no mentions are given)."""

from __future__ import annotations

from collections.abc import Iterable

from ..types import Mention
from .base import KnowledgeBase
from .normalize import normalize_name

# Common English words that are also names in many KBs ("AS", "IS", "All" ...); never matched by default.
DEFAULT_STOP_WORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "also", "may", "might", "must", "shall", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "new", "use", "used", "using", "may", "per", "via", "well"]
)


class Gazetteer:
    """Longest-match lookup of KB names in text, with length, stop-word, type and acronym-case filters."""

    def __init__(
        self,
        kb: KnowledgeBase,
        min_chars: int = 3,
        stop_words: Iterable[str] = (),
        use_default_stop_words: bool = True,
        entity_types: Iterable[str] | None = None,
    ):
        self.kb = kb
        self.min_chars = min_chars
        self.stop = {normalize_name(w) for w in stop_words}
        if use_default_stop_words:
            self.stop |= DEFAULT_STOP_WORDS
        self.entity_types = set(entity_types) if entity_types else None

    def find(self, text: str, left_chars: int = 50, right_chars: int = 50) -> list[Mention]:
        index = self.kb.name_index()
        store = self.kb.store
        mentions = []
        for match in index.scan(text, min_chars=self.min_chars):
            surface = text[match.start : match.end]
            name_rows = index.name_rows(match.key)
            entity_rows = index.a["name_entity"][name_rows]
            ok = [
                (n, e) for n, e in zip(name_rows, entity_rows, strict=True)
                if store.alive[e] and (self.entity_types is None or store.types[int(e)] in self.entity_types)
            ]
            names = [store.names[int(n)] for n, _ in ok]
            if not any(_case_compatible(name, surface) for name in names):
                continue
            if index.keys[match.key] in self.stop and not any(_is_acronym(name) for name in names):
                continue
            entity_type = store.types[int(ok[0][1])] or None
            mentions.append(
                Mention.from_span(text, match.start, match.end, label=entity_type,
                                  left_chars=left_chars, right_chars=right_chars)
            )
        return mentions


def _is_acronym(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and len(name) <= 5 and all(c.isupper() for c in letters)


def _case_compatible(name: str, surface: str) -> bool:
    """Short all-capital names (acronyms such as "AS" or "ALL") only match the same capitals in text,
    and are then kept even when the lower-case word is a stop word."""
    if _is_acronym(name):
        return [c for c in surface if c.isalpha()] == [c for c in name if c.isalpha()]
    return True
