"""L2 candidate retrieval: every configured retriever searches the whole batch, and their hits are fused.

Retrievers (``dict``: names; ``faiss``: name vectors; see glinker/retrievers) are chosen by the
layers' ``type``. Abbreviations defined in the same text ("Duchenne muscular dystrophy (DMD)") are
searched by their long form too. Candidates are fused by reciprocal rank (exact name hits first),
deduplicated by entity, and cut to ``max_candidates``; each carries its best similarity and the
layers that found it. Without mentions, every KB name found in the text is a mention (the KB gazetteer).
"""

from __future__ import annotations

import numpy as np

from glinker.config import L2Config
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError, LimitError
from glinker.kb.gazetteer import Gazetteer
from glinker.kb.hierarchy import ancestor_votes
from glinker.registry import retriever
from glinker.retrievers import Hits, Query
from glinker.retrievers.base import HitTable
from glinker.text import expanded, facts_of
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
        leaders: dict[int, np.ndarray] = {}  # per table shared by mentions: see _contenders
        ranked = iter([self._fuse([hits[i] for hits in per_retriever], leaders) for i in range(len(queries))])
        return L2Output([[MentionCandidates(m, next(ranked)) for m in per_text] for per_text in mentions])

    def _queries(self, mentions: list[list[Mention]], texts: list[str] | None) -> list[Query]:
        """Search strings per mention: its text, plus its text with the abbreviations defined in the text
        written out (a mention that is one, or holds some as words)."""
        queries = []
        facts = facts_of(texts) if texts is not None else [None] * len(mentions)
        for per_text, text_facts in zip(mentions, facts, strict=True):
            defined = text_facts.abbreviations if (self.config.abbreviations and text_facts) else {}
            text = text_facts.text if text_facts else None
            for mention in per_text:
                long_form = expanded(mention.text, defined)
                strings = (mention.text, long_form) if long_form else (mention.text,)
                queries.append(Query(strings, text, mention.start, mention.end))
        return queries

    # ------------------------------------------------------------------ fusion

    def _fuse(self, layer_hits: list[Hits], leaders: dict[int, np.ndarray]) -> list:
        """Order: exact name matches first (the entity's label before an alias, then by popularity),
        then canonical (word-order free, stemmed) name matches, then reciprocal-rank fusion across
        layers, best similarity, popularity, entity id. Only the rows that can reach the first
        ``_cut`` places are sorted (see :meth:`_contenders`)."""
        store = self.kb.store
        tables = [hits.table() for hits in layer_hits]
        rows = self._contenders(tables, leaders)
        if not len(rows):
            return []
        fused, best = np.zeros(len(rows)), np.zeros(len(rows))
        exact, exact_label, canonical = (np.zeros(len(rows), bool) for _ in range(3))
        found_by = []
        for table in tables:
            rank = table.rank_of(rows)
            found = rank >= 0
            at = np.maximum(rank, 0)
            fused += np.where(found, 1.0 / (self.config.fusion_k + rank + 1), 0.0)
            if found.any():
                best = np.maximum(best, np.where(found, table.scores[at], -np.inf))
                exact |= found & table.exact[at]
                exact_label |= found & table.exact_label[at]
                canonical |= found & table.canonical[at]
            found_by.append(found)
        popularity, fused, best = store.popularity[rows].tolist(), fused.tolist(), best.tolist()
        exact, exact_label, canonical = exact.tolist(), exact_label.tolist(), canonical.tolist()
        ids = [store.ids[int(r)] for r in rows]
        order = sorted(range(len(rows)), key=lambda i: (
            -exact[i], -exact_label[i], -canonical[i], -popularity[i] if exact[i] else 0,
            -fused[i], -best[i], -popularity[i], ids[i]))
        ranked = [int(rows[i]) for i in order]
        best_of = {int(rows[i]): best[i] for i in order}
        sources = {int(rows[i]): "+".join(dict.fromkeys(r.layer.type for r, f in zip(self.retrievers, found_by,
                                                                                      strict=True) if f[i]))
                   for i in order[: self.config.max_candidates]}
        chosen = ranked[: self.config.max_candidates]
        if self.config.hierarchy is not None:
            added = self._ancestors(ranked, best_of)
            chosen = chosen[: self.config.max_candidates - len(added)] + list(added)
            best_of.update(added)
            sources.update(dict.fromkeys(added, "hierarchy"))
        return [store.candidate(row, best_of[row], sources[row]) for row in chosen]

    @property
    def _cut(self) -> int:
        """How many of the best candidates fusion reads: the kept ones and those voting for ancestors."""
        h = self.config.hierarchy
        return max(self.config.max_candidates, h.from_top if h is not None else 0)

    def _contenders(self, tables: list[HitTable], leaders: dict[int, np.ndarray]) -> np.ndarray:
        """The valid rows (alive, popular enough) that can reach the first ``_cut`` places: every row of
        every layer but the one with the most hits, and of that one its first ``_cut`` rows by the order it
        alone would give (flags, popularity of exact hits, rank). Its other rows were found by no other
        layer, so each of those ``_cut`` rows stays ahead of them whatever the other layers add."""
        if not tables:
            return np.zeros(0, np.int64)
        largest = max(range(len(tables)), key=lambda t: len(tables[t].rows))
        key = id(tables[largest])
        if key not in leaders:
            leaders[key] = self._leaders(tables[largest])
        others = [t.rows for i, t in enumerate(tables) if i != largest]
        rows = np.unique(np.concatenate([leaders[key], *others]))
        return rows[self._valid(rows)]

    def _leaders(self, table: HitTable) -> np.ndarray:
        """The first ``_cut`` valid rows of one layer's hits in the order fusion gives them when alone."""
        valid = self._valid(table.rows)
        rows, exact = table.rows[valid], table.exact[valid]
        if len(rows) <= self._cut:
            return rows
        popularity = np.where(exact, self.kb.store.popularity[rows], 0)
        order = np.lexsort((np.arange(len(rows)), -popularity, ~table.canonical[valid],
                            ~table.exact_label[valid], ~exact))
        return rows[order[: self._cut]]

    def _valid(self, rows: np.ndarray) -> np.ndarray:
        store = self.kb.store
        return store.alive[rows] & (store.popularity[rows] >= self.config.min_popularity)

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
