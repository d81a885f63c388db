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
        index = self.kb.name_index()
        entity_of = index.entities_of
        label_name = self.kb.store.label_name_rows()
        hits = Hits()
        for key in (exact.get(s) for s in strings):
            if key is None:
                continue
            name_rows = index.name_rows(key)
            for name_row, row in zip(name_rows, entity_of(name_rows), strict=True):
                hits.add(int(row), EXACT_SCORE)
                hits.exact.add(int(row))
                if name_row == label_name[row]:
                    hits.exact_label.add(int(row))
        for s in strings:
            for row in entity_of(canonical.get(s, _NO_ROWS)):
                hits.add(int(row), CANONICAL_SCORE)
                hits.canonical.add(int(row))
        for s in strings:
            for key, score in zip(*similar.get(s, _NO_KEYS), strict=True):
                for row in entity_of(index.name_rows(int(key))):
                    hits.add(int(row), float(score))
        return hits


RETRIEVER = NameRetriever
