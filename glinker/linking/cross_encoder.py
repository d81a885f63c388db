"""Cross-encoder linking: the pair classifier (glinker/models/cross_encoder.py) reads (mention in
context, entity text) pairs and scores each one. The mention is marked in its context
(``inputs.marked_context``), as ``glinker train`` task ``linker`` trains it.

Pairs of the whole batch are scored together, sorted by length and padded per batch; a candidate
repeated in a mention is read once.
"""

from __future__ import annotations

import numpy as np

from ..models.cross_encoder import get_pair_classifier
from ..types import MentionCandidates
from .inputs import candidate_text, marked_context


class CrossEncoderScorer:
    def __init__(self, model_name: str, template: str, device: str = "cpu", max_length: int = 512,
                 batch_size: int = 32, token: str | None = None, context_chars: int = 100, quantize: str = "none",
                 runtime: str = "torch"):
        self.classifier = get_pair_classifier(model_name, device=device, token=token, quantize=quantize, runtime=runtime)
        self.template = template
        self.max_length = max_length
        self.batch_size = batch_size
        self.context_chars = context_chars

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Nothing to precompute: every pair is read together."""
        return 0

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention; a candidate repeated in a mention is read once."""
        out = [[np.zeros(len(g.candidates), dtype=np.float32) for g in per_text] for per_text in groups]
        pairs: dict[tuple[str, str], int] = {}
        targets = []  # (text, mention, candidate position, pair)
        for t, per_text in enumerate(groups):
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                query = marked_context(texts[t], g.mention.start, g.mention.end, self.context_chars)
                for p, c in enumerate(g.candidates):
                    pair = pairs.setdefault((query, candidate_text(c, self.template)), len(pairs))
                    targets.append((t, m, p, pair))
        if not pairs:
            return out
        scores = self.classifier.score_pairs(list(pairs), self.batch_size, self.max_length)
        for t, m, p, pair in targets:
            out[t][m][p] = scores[pair]
        return out
