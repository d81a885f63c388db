"""L2 candidate retrieval: every configured retriever searches the whole batch, and their hits are fused.

Retrievers (``dict``: names; ``faiss``: name vectors; see glinker/retrievers) are chosen by the
layers' ``type``. Abbreviations defined in the same text ("Duchenne muscular dystrophy (DMD)") are
searched by their long form too. Candidates are fused by reciprocal rank (exact name hits first),
deduplicated by entity, and cut to ``max_candidates``; each carries its best similarity and the
layers that found it. Without mentions, every KB name found in the text is a mention (the KB gazetteer).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from glinker.config import L2Config
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError, LimitError
from glinker.kb.gazetteer import Gazetteer
from glinker.kb.hierarchy import ancestor_votes
from glinker.registry import retriever
from glinker.retrievers import Hits, Query
from glinker.text import facts_of
from glinker.types import L2Output, Mention, MentionCandidates


class CandidateRetriever:
    def __init__(self, config: L2Config, setup: LayerSetup):
        self.config = config
        self.kb = setup.kb
        layers = sorted(config.layers, key=lambda layer: -layer.priority)
        self.retrievers = [retriever(layer.type)(layer, config, self.kb) for layer in layers]
        self.gazetteer = Gazetteer(self.kb)

    # ------------------------------------------------------------------ batch entry point

    def __call__(self, mentions: list[list[Mention]] | None = None, texts: list[str] | None = None) -> L2Output:
        if mentions is None:
            if texts is None:
                raise InputError("l2_chain needs 'mentions' or 'texts'; the input has neither")
            mentions = [self.gazetteer.find(f.text, defined=f.abbreviations) for f in facts_of(texts)]
        elif texts is not None and len(mentions) != len(texts):
            raise InputError(f"l2_chain got {len(mentions)} mention lists for {len(texts)} texts")
        limit = self.config.max_mentions_per_text
        for t, per_text in enumerate(mentions):
            if len(per_text) > limit:
                raise LimitError(f"l2_chain: text {t} has {len(per_text):,} mentions, more than "
                                 f"max_mentions_per_text={limit:,}; split the document or raise the limit")
        queries = self._queries(mentions, texts)
        per_retriever = [r.search(queries) for r in self.retrievers]
        ranked = iter([self._fuse([hits[i] for hits in per_retriever]) for i in range(len(queries))])
        return L2Output([[MentionCandidates(m, next(ranked)) for m in per_text] for per_text in mentions])

    def _queries(self, mentions: list[list[Mention]], texts: list[str] | None) -> list[Query]:
        """Search strings per mention: its text, plus the long form of an abbreviation defined in the text."""
        queries = []
        facts = facts_of(texts) if texts is not None else [None] * len(mentions)
        for per_text, text_facts in zip(mentions, facts, strict=True):
            defined = text_facts.abbreviations if (self.config.abbreviations and text_facts) else {}
            text = text_facts.text if text_facts else None
            for mention in per_text:
                long_form = defined.get(mention.text.strip())
                strings = (mention.text, long_form) if long_form else (mention.text,)
                queries.append(Query(strings, text, mention.start, mention.end))
        return queries

    # ------------------------------------------------------------------ fusion

    def _fuse(self, layer_hits: list[Hits]) -> list:
        """Order: exact name matches first (the entity's label before an alias, then by popularity),
        then canonical (word-order free, stemmed) name matches, then reciprocal-rank fusion across
        layers, best similarity, popularity, entity id."""
        store = self.kb.store
        k = self.config.fusion_k
        fused: dict[int, float] = defaultdict(float)
        best: dict[int, float] = defaultdict(float)
        sources: dict[int, list[str]] = defaultdict(list)
        exact = set().union(*(hits.exact for hits in layer_hits))
        exact_label = set().union(*(hits.exact_label for hits in layer_hits))
        canonical = set().union(*(hits.canonical for hits in layer_hits))
        for found_by, hits in zip(self.retrievers, layer_hits, strict=True):
            for row, (rank, score) in hits.found.items():
                if not store.alive[row] or store.popularity[row] < self.config.min_popularity:
                    continue
                fused[row] += 1.0 / (k + rank + 1)
                best[row] = max(best[row], score)
                if found_by.layer.type not in sources[row]:
                    sources[row].append(found_by.layer.type)
        if not fused:
            return []
        rows = np.fromiter(fused, dtype=np.int64, count=len(fused))
        ids = [store.ids[int(r)] for r in rows]
        order = sorted(
            range(len(rows)),
            key=lambda i: (
                -(rows[i] in exact),
                -(rows[i] in exact_label),
                -(rows[i] in canonical),
                -store.popularity[rows[i]] if rows[i] in exact else 0,
                -fused[rows[i]],
                -best[rows[i]],
                -store.popularity[rows[i]],
                ids[i],
            ),
        )
        ranked = [int(rows[i]) for i in order]
        chosen = ranked[: self.config.max_candidates]
        if self.config.hierarchy is not None:
            added = self._ancestors(ranked, best)
            chosen = chosen[: self.config.max_candidates - len(added)] + list(added)
            best.update(added)
            for row in added:
                sources[row] = ["hierarchy"]
        return [store.candidate(row, best[row], "+".join(sources[row])) for row in chosen]

    def _ancestors(self, ranked: list[int], best: dict[int, float]) -> dict[int, float]:
        """The most voted ancestors of the best candidates that are not candidates yet, each scored
        0.9 times the score of its best-ranked descendant."""
        h = self.config.hierarchy
        votes, first_voter = ancestor_votes(self.kb.store, ranked, h.field, h.depth, h.from_top)
        present = set(ranked[: self.config.max_candidates])
        fresh = sorted((p for p in votes if p not in present), key=lambda p: (-votes[p], self.kb.store.ids[p]))
        return {p: 0.9 * best[first_voter[p]] for p in fresh[: h.max_added]}

    # ------------------------------------------------------------------ precompute

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Build every retriever's vectors and index now instead of at the first batch; returns the
        size of the largest index."""
        return max((r.precompute(batch_size, progress) for r in self.retrievers), default=0)


def _kb_layers(config: L2Config) -> list[str]:
    return [layer.type for layer in config.layers]


def _precompute_on_load(config: L2Config) -> bool:
    return bool(config.encoder and config.encoder.precompute_on_load)


CONTRACT = LayerContract(
    config=L2Config,
    inputs={"mentions": Socket(Mention, required=False), "texts": Socket(required=False)},
    output=L2Output,
    precompute=True,
    precompute_on_load=_precompute_on_load,
    kb_layers=_kb_layers,
)


def build(config: L2Config, setup: LayerSetup) -> CandidateRetriever:
    return CandidateRetriever(config, setup)
