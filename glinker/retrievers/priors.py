"""``priors`` layers: the entities that annotated mentions of the same surface were linked to (the mention
priors of ``glinker train`` task ``priors``, glinker/linking/priors.py), most annotated first, each with
its share of the annotations as its score. Entities missing from the KB are skipped."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..linking.priors import MentionPriors
from .base import Hits, Query, Retriever


class PriorRetriever(Retriever):
    def __init__(self, layer, chain, kb):
        super().__init__(layer, chain, kb)
        if not layer.priors:
            raise ConfigError("l2 layer type 'priors' needs 'priors': the output folder of glinker train task "
                              "'priors' (or its priors.json)")
        self.priors = MentionPriors.load(layer.priors)

    def search(self, queries: list[Query]) -> list[Hits]:
        return [self._hits(q.strings) for q in queries]

    def _hits(self, strings: tuple[str, ...]) -> Hits:
        hits = Hits()
        for s in strings:
            shares = self.priors.shares(s, self.layer.prior_min_count) or {}
            ranked = sorted(shares.items(), key=lambda item: -item[1])
            rows = self.kb.store.rows_of([e for e, _ in ranked])
            found = np.flatnonzero(rows >= 0)[: self.layer.top_k]  # entities missing from the KB skipped first
            hits.extend(rows[found], np.array([share for _, share in ranked])[found])
        return hits


RETRIEVER = PriorRetriever
