"""``dict`` layers: KB names equal to the mention after normalisation, equal in canonical form, or
similar by character n-gram TF-IDF."""

from __future__ import annotations

import numpy as np

from .base import Hits, Query, Retriever

EXACT_SCORE = 1.0
CANONICAL_SCORE = 0.95
_NO_ROWS = np.zeros(0, np.int64)
_NO_KEYS = (np.zeros(0, np.int64), np.zeros(0, np.float32))


class NameRetriever(Retriever):
    """Every distinct search string of a batch is looked up once, all at once; a mention repeated in
    the batch shares its :class:`Hits` (they are only read)."""

    def search(self, queries: list[Query]) -> list[Hits]:
        distinct = list(dict.fromkeys(q.strings for q in queries))
        found = dict(zip(distinct, self._search_distinct(distinct), strict=True))
        return [found[q.strings] for q in queries]

    def _search_distinct(self, queries: list[tuple[str, ...]]) -> list[Hits]:
        index = self.kb.name_index()
        strings = list(dict.fromkeys(s for per_mention in queries for s in per_mention))
        exact = canonical = similar = {}
        if "exact" in self.layer.search_mode:
            exact = {s: index.exact(s) for s in strings}
            canonical = dict(zip(strings, index.canonical_many(strings), strict=True))
        if "fuzzy" in self.layer.search_mode and self.layer.fuzzy is not None:
            k = self.chain.max_candidates * 3
            similar = dict(zip(strings, index.similar_many(strings, k, self.layer.fuzzy.min_similarity), strict=True))
        return [self._hits(per_mention, exact, canonical, similar) for per_mention in queries]

    def _hits(self, strings: tuple[str, ...], exact: dict, canonical: dict, similar: dict) -> Hits:
        """Exact, then canonical, then similar name hits, as arrays (a name shared by a million entities
        costs numpy work, not a Python loop)."""
        index = self.kb.name_index()
        hits = Hits()
        name_rows = _concat([index.name_rows(exact[s]) for s in strings if exact.get(s) is not None])
        rows = index.entities_of(name_rows)
        hits.extend(rows, EXACT_SCORE, exact=True, exact_label=name_rows == self.kb.store.label_name_rows()[rows])
        hits.extend(index.entities_of(_concat([canonical.get(s, _NO_ROWS) for s in strings])), CANONICAL_SCORE,
                    canonical=True)
        found = [similar.get(s, _NO_KEYS) for s in strings]
        key_rows = [index.name_rows(int(key)) for keys, _ in found for key in keys]
        scores = np.concatenate([scores for _, scores in found])
        hits.extend(index.entities_of(_concat(key_rows)), np.repeat(scores, [len(r) for r in key_rows]))
        return hits


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else _NO_ROWS


RETRIEVER = NameRetriever
