"""``faiss`` layers: one vector per KB name, one encoder call and one index search per batch.

The type keeps its glinker 0.1.x name; the index behind it is exact inner product over the name
vectors (numpy, blocked) up to 250k names and FAISS above, or as ``index`` asks (see kb/vector_index.py).
"""

from __future__ import annotations

import numpy as np

from ..linking import context_window
from ..models.encoder import get_encoder
from .base import Hits, Query, Retriever

CONTEXT_CHARS = 50


class VectorRetriever(Retriever):
    needs_encoder = True

    def __init__(self, layer, chain, kb):
        super().__init__(layer, chain, kb)
        emb = chain.encoder
        self.batch_size = emb.batch_size
        self.encoder = get_encoder(emb.model_name, device=emb.device, max_length=emb.max_length, quantize=emb.quantize,
                                   runtime=emb.runtime)
        kb.require_vectors(self.encoder.model_id, "names")

    def search(self, queries: list[Query]) -> list[Hits]:
        strings = [self._strings(q) for q in queries]
        owners = [i for i, per_mention in enumerate(strings) for _ in per_mention]
        flat = [s for per_mention in strings for s in per_mention]
        results = [Hits() for _ in queries]
        if not flat:
            return results
        top_k = self.layer.top_k
        index, store = self._index(self.batch_size), self.kb.store
        entity_of = store.name_entity_rows()
        # names of retired entities stay in the index until the KB is compacted: search past them
        live_name = None if store.alive.all() else store.alive[entity_of]
        k = top_k * 3 if live_name is None else min(top_k * 3 + int((~live_name).sum()), max(index.size, 1))
        scores, name_rows = index.search(self.encoder.encode(flat, batch_size=self.batch_size), k)
        per_owner: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for owner, row_scores, row_ids in zip(owners, scores, name_rows, strict=True):
            found = row_ids >= 0
            if live_name is not None:
                found[found] = live_name[row_ids[found]]
            per_owner.setdefault(owner, []).append((entity_of[row_ids[found]], np.minimum(row_scores[found], 1.0)))
        for owner, found_by_string in per_owner.items():
            # a mention and its long form: their hits ranked together by similarity (an acronym's own
            # nearest names are mostly noise, and should not all rank before its long form's)
            rows, row_scores = (np.concatenate(parts) for parts in zip(*found_by_string, strict=True))
            order = np.argsort(-row_scores, kind="stable")
            _add_until_full(results[owner], rows[order], row_scores[order], top_k * len(strings[owner]))
        return results

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Embed every KB name and build the index now instead of at the first batch."""
        return self._index(batch_size, progress).size

    def _strings(self, query: Query) -> tuple[str, ...]:
        """The mention (with its context for ``query: mention_context``), then its long form if any."""
        if self.layer.query == "mention_context" and query.text is not None:
            return (context_window(query.text, query.start, query.end, CONTEXT_CHARS), *query.strings[1:])
        return query.strings

    def _index(self, batch_size: int, progress: bool = False):
        return self.kb.vector_index(self.encoder, "names", index_type=self.layer.index, batch_size=batch_size,
                                    progress=progress)


def _add_until_full(hits: Hits, rows: np.ndarray, scores: np.ndarray, limit: int) -> None:
    """Add hits in order while ``hits`` holds fewer than ``limit`` distinct rows; the rest are dropped (also
    better scores of rows already held)."""
    _, first = np.unique(rows, return_index=True)
    new = np.zeros(len(rows), dtype=bool)
    new[first] = ~np.isin(rows[first], hits.table().rows)
    held_before = len(hits) + np.cumsum(new) - new
    keep = held_before < limit
    hits.extend(rows[keep], scores[keep])


RETRIEVER = VectorRetriever
