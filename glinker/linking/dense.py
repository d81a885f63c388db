"""Dense disambiguation: no extra model, the sentence encoder of the KB vectors.

For each mention, every candidate gets

    (1 - b) * retrieval + b * max(0, cos(mention with context, entity text))

where retrieval is the L2 similarity (1.0 exact name, 0.95 canonical, else fuzzy/vector) and b is
``1 - retrieval_weight``. With ``hierarchy`` set, a third term ``support_weight * v / (1 + v)``
rewards candidates that the mention's other candidates descend from (``v``: their ancestor votes,
see glinker/kb/hierarchy.py), and the sum is divided by ``1 + support_weight`` to stay in [0, 1].
Mentions (with ``context_chars`` of context) are encoded once per batch; entity vectors are made
once per KB with the schema template (a candidate missing from the KB is embedded from its own fields).
"""

from __future__ import annotations

import numpy as np

from ..kb.hierarchy import ancestor_votes
from ..models.encoder import get_encoder
from ..types import MentionCandidates
from .inputs import candidate_vectors, context_window, with_retrieval


class DenseScorer:
    def __init__(self, kb, model_name: str, template: str, device: str = "cpu", max_length: int = 256,
                 context_chars: int = 100, retrieval_weight: float = 0.8, batch_size: int = 32,
                 hierarchy=None, support_weight: float = 0.1, quantize: str = "none",
                 runtime: str = "torch"):
        self.kb = kb
        self.encoder = get_encoder(model_name, device=device, max_length=min(max_length, 512), quantize=quantize,
                                   runtime=runtime)
        self.template = template
        kb.require_vectors(self.encoder.model_id, "entities", template)
        self.context_chars = context_chars
        self.retrieval_weight = retrieval_weight
        self.batch_size = batch_size
        self.hierarchy = hierarchy
        self.support_weight = support_weight if hierarchy is not None else 0.0

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        return len(self.kb.vectors(self.encoder, "entities", self.template, batch_size=batch_size, progress=progress).matrix)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention."""
        flat = [(t, g) for t, per_text in enumerate(groups) for g in per_text]
        if not flat:
            return [[] for _ in groups]
        contexts = [context_window(texts[t], g.mention.start, g.mention.end, self.context_chars) for t, g in flat]
        mention_vecs = self.encoder.encode(contexts, batch_size=self.batch_size)
        candidates = [c for _, g in flat for c in g.candidates]
        vectors, rows = candidate_vectors(self.kb, self.encoder, "entities", self.template, candidates,
                                          lambda texts: self.encoder.encode(texts, batch_size=self.batch_size))
        store = self.kb.store
        w = self.retrieval_weight
        out: list[list[np.ndarray]] = [[] for _ in groups]
        hi = 0
        for (t, g), vec in zip(flat, mention_vecs, strict=True):
            lo, hi = hi, hi + len(g.candidates)
            cos = vectors[lo:hi] @ vec
            scores = with_retrieval(g.candidates, np.clip(cos, 0.0, 1.0), w)
            if self.support_weight and hi > lo:
                h = self.hierarchy
                votes, _ = ancestor_votes(store, [int(r) for r in rows[lo:hi] if r >= 0], h.field, h.depth,
                                          h.from_top)
                v = np.array([votes.get(int(r), 0.0) for r in rows[lo:hi]])
                scores = (scores + self.support_weight * v / (1 + v)) / (1 + self.support_weight)
            out[t].append(scores.astype(np.float32))
        return out
