"""Dense disambiguation: cosine between a mention in its context and each candidate's entity text.

The mention (with ``context_chars`` of context) is encoded once per batch; entity vectors come from
the KB, made once with the schema template. The final score mixes the context similarity with the L2
retrieval similarity (weight ``retrieval_weight``), so an exact name match with a fitting description wins.
"""

from __future__ import annotations

import numpy as np

from ..linking import context_window
from ..types import MentionCandidates
from .encoder import get_encoder


class DenseScorer:
    def __init__(self, kb, model_name: str, template: str, device: str = "cpu", max_length: int = 256,
                 context_chars: int = 100, retrieval_weight: float = 0.5, batch_size: int = 32):
        self.kb = kb
        self.encoder = get_encoder(model_name, device=device, max_length=min(max_length, 512))
        self.template = template
        self.context_chars = context_chars
        self.retrieval_weight = retrieval_weight
        self.batch_size = batch_size

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        return len(self.kb.vectors(self.encoder, "entities", self.template, batch_size=batch_size, progress=progress).matrix)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention."""
        flat = [(t, g) for t, per_text in enumerate(groups) for g in per_text]
        if not flat:
            return [[] for _ in groups]
        contexts = [context_window(texts[t], g.mention.start, g.mention.end, self.context_chars) for t, g in flat]
        mention_vecs = self.encoder.encode(contexts, batch_size=self.batch_size)
        entity_vecs = self.kb.vectors(self.encoder, "entities", self.template).matrix
        store = self.kb.store
        w = self.retrieval_weight
        out: list[list[np.ndarray]] = [[] for _ in groups]
        for (t, g), vec in zip(flat, mention_vecs, strict=True):
            rows = [store.row_of(c.entity_id) for c in g.candidates]
            if rows:
                cos = np.asarray(entity_vecs[rows], dtype=np.float32) @ vec
                retrieval = np.array([c.score for c in g.candidates], dtype=np.float32)
                scores = (1 - w) * np.clip(cos, 0.0, 1.0) + w * np.clip(retrieval, 0.0, 1.0)
            else:
                scores = np.zeros(0, dtype=np.float32)
            out[t].append(scores)
        return out
