"""L2 candidate retrieval: name lookup (``dict``) and dense vectors (``faiss``), fused.

For a batch, every mention is looked up in each layer: the dict layer by exact normalised name and
character n-gram similarity, the faiss layer by one encoder call and one FAISS search for all
mentions. Abbreviations defined in the same text ("Duchenne muscular dystrophy (DMD)") are searched
by their long form too. Candidates are fused by reciprocal rank (exact name hits first), deduplicated
by entity, and cut to ``max_candidates``; each carries its best similarity and the layers that found it.
Without mentions, every KB name found in the text is a mention (the KB gazetteer).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from glinker.config import L2Config, L2LayerConfig, NodeSpec
from glinker.errors import InputError, LimitError
from glinker.kb.gazetteer import Gazetteer
from glinker.kb.hierarchy import ancestor_votes
from glinker.linking import context_window
from glinker.models.encoder import get_encoder
from glinker.text import abbreviations
from glinker.types import L2Output, Mention, MentionCandidates

EXACT_SCORE = 1.0
CONTEXT_CHARS = 50
CANONICAL_SCORE = 0.95


@dataclass
class Hits:
    """What one layer found for one mention: entity row -> (rank, similarity)."""

    found: dict[int, tuple[int, float]] = field(default_factory=dict)
    exact: set[int] = field(default_factory=set)
    exact_label: set[int] = field(default_factory=set)
    canonical: set[int] = field(default_factory=set)

    def add(self, row: int, score: float) -> None:
        best = self.found.get(row)
        if best is None:
            self.found[row] = (len(self.found), score)
        elif score > best[1]:
            self.found[row] = (best[0], score)


class CandidateRetriever:
    def __init__(self, node: NodeSpec, config: L2Config, runtime):
        self.config = config
        self.kb = runtime.kb
        self.layers = sorted(config.layers, key=lambda layer: -layer.priority)
        emb = config.embeddings
        self.encoder = None
        if any(layer.type == "faiss" for layer in self.layers):
            self.encoder = get_encoder(emb.model_name, device=emb.device, max_length=emb.max_length)
            self.kb.require_vectors(self.encoder.model_id, "names")
        self.precompute_on_load = bool(emb and emb.precompute_on_load and self.encoder)
        self.gazetteer = Gazetteer(self.kb)

    # ------------------------------------------------------------------ batch entry point

    def __call__(self, mentions: list[list[Mention]] | None = None, texts: list[str] | None = None) -> L2Output:
        if mentions is None:
            if texts is None:
                raise InputError("l2_chain needs 'mentions' or 'texts'; the input has neither")
            mentions = [self.gazetteer.find(t) for t in texts]
        elif texts is not None and len(mentions) != len(texts):
            raise InputError(f"l2_chain got {len(mentions)} mention lists for {len(texts)} texts")
        limit = self.config.max_mentions_per_text
        for t, per_text in enumerate(mentions):
            if len(per_text) > limit:
                raise LimitError(f"l2_chain: text {t} has {len(per_text):,} mentions, more than "
                                 f"max_mentions_per_text={limit:,}; split the document or raise the limit")
        flat = [m for per_text in mentions for m in per_text]
        queries = self._queries(mentions, texts)
        contexts = None
        if texts is not None and any(layer.query == "mention_context" for layer in self.layers):
            contexts = [context_window(texts[t], m.start, m.end, CONTEXT_CHARS)
                        for t, per_text in enumerate(mentions) for m in per_text]
        per_layer = [self._search(layer, queries, contexts) for layer in self.layers]
        ranked = [self._fuse([hits[i] for hits in per_layer]) for i in range(len(flat))]
        out, i = [], 0
        for per_text in mentions:
            group = []
            for mention in per_text:
                group.append(MentionCandidates(mention, ranked[i]))
                i += 1
            out.append(group)
        return L2Output(out)

    def _queries(self, mentions: list[list[Mention]], texts: list[str] | None) -> list[list[str]]:
        """Search strings per mention: its text, plus the long form of an abbreviation defined in the text."""
        queries = []
        for t, per_text in enumerate(mentions):
            defined = abbreviations(texts[t]) if (self.config.abbreviations and texts) else {}
            for mention in per_text:
                q = [mention.text]
                long_form = defined.get(mention.text.strip())
                if long_form:
                    q.append(long_form)
                queries.append(q)
        return queries

    # ------------------------------------------------------------------ layers

    def _search(self, layer: L2LayerConfig, queries: list[list[str]], contexts: list[str] | None) -> list[Hits]:
        if layer.type == "dict":  # a name repeated in the batch is looked up once (its Hits are only read)
            distinct = list(dict.fromkeys(map(tuple, queries)))
            found = dict(zip(distinct, self._dict_search(layer, distinct), strict=True))
            return [found[tuple(q)] for q in queries]
        if layer.query == "mention_context" and contexts is not None:
            queries = [[c, *q[1:]] for c, q in zip(contexts, queries, strict=True)]
        return self._faiss_search(layer, queries)

    def _dict_search(self, layer: L2LayerConfig, queries: list[tuple[str, ...]]) -> list[Hits]:
        """Hits of each mention's search strings; every distinct string is looked up once, all at once."""
        index = self.kb.name_index()
        entity_of = index.entities_of
        label_name = self.kb.store.label_name_rows()
        strings = list(dict.fromkeys(q for per_mention in queries for q in per_mention))
        exact = canonical = similar = {}
        if "exact" in layer.search_mode:
            exact = {q: index.exact(q) for q in strings}
            canonical = dict(zip(strings, index.canonical_many(strings), strict=True))
        if "fuzzy" in layer.search_mode and layer.fuzzy is not None:
            k = self.config.max_candidates * 3
            similar = dict(zip(strings, index.similar_many(strings, k, layer.fuzzy.min_similarity), strict=True))
        no_rows, no_keys = np.zeros(0, np.int64), (np.zeros(0, np.int64), np.zeros(0, np.float32))
        out = []
        for per_mention in queries:
            hits = Hits()
            for key in (exact.get(q) for q in per_mention):
                if key is None:
                    continue
                name_rows = index.name_rows(key)
                for name_row, row in zip(name_rows, entity_of(name_rows), strict=True):
                    hits.add(int(row), EXACT_SCORE)
                    hits.exact.add(int(row))
                    if name_row == label_name[row]:
                        hits.exact_label.add(int(row))
            for q in per_mention:
                for row in entity_of(canonical.get(q, no_rows)):
                    hits.add(int(row), CANONICAL_SCORE)
                    hits.canonical.add(int(row))
            for q in per_mention:
                for key, score in zip(*similar.get(q, no_keys), strict=True):
                    for row in entity_of(index.name_rows(int(key))):
                        hits.add(int(row), float(score))
            out.append(hits)
        return out

    def _faiss_search(self, layer: L2LayerConfig, queries: list[list[str]]) -> list[Hits]:
        owners = [i for i, q in enumerate(queries) for _ in q]
        flat_queries = [s for q in queries for s in q]
        results = [Hits() for _ in queries]
        if not flat_queries:
            return results
        emb = self.config.embeddings
        index = self.kb.vector_index(self.encoder, "names", index_type=layer.index, batch_size=emb.batch_size)
        vectors = self.encoder.encode(flat_queries, batch_size=emb.batch_size)
        scores, name_rows = index.search(vectors, layer.top_k * 3)
        entity_of = self.kb.store.name_entity_rows()
        for owner, row_scores, row_ids in zip(owners, scores, name_rows, strict=True):
            hits = results[owner]
            for score, name_row in zip(row_scores, row_ids, strict=True):
                if name_row >= 0 and len(hits.found) < layer.top_k * len(queries[owner]):
                    hits.add(int(entity_of[name_row]), min(float(score), 1.0))
        return results

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
        for layer, hits in zip(self.layers, layer_hits, strict=True):
            for row, (rank, score) in hits.found.items():
                if not store.alive[row] or store.popularity[row] < self.config.min_popularity:
                    continue
                fused[row] += 1.0 / (k + rank + 1)
                best[row] = max(best[row], score)
                if layer.type not in sources[row]:
                    sources[row].append(layer.type)
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
        """Embed every KB name and build the FAISS index now instead of at the first batch."""
        if self.encoder is None:
            return 0
        layer = next(layer for layer in self.layers if layer.type == "faiss")
        return self.kb.vector_index(self.encoder, "names", index_type=layer.index, batch_size=batch_size,
                                    progress=progress).size


def build(node: NodeSpec, config: L2Config, runtime) -> CandidateRetriever:
    return CandidateRetriever(node, config, runtime)
