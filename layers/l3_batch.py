"""L3 disambiguation over a whole batch: each mention is scored against its own L2 candidates only.

Backends: ``dense`` (sentence-encoder cosine, no extra model), ``gliner`` (GLiNER with the mention
spans fixed and candidates as labels), ``cross_encoder`` (a sequence-classification model over
(mention in context, entity text) pairs) and ``gliclass`` (GLiClass: the mention in context classified
over its candidates). The best candidate at or above ``threshold`` is the link;
all candidate scores are kept for L0.
"""

from __future__ import annotations

from glinker.config import L3Config
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError
from glinker.linking import consistent_rankings, decide
from glinker.linking.backends import make_scorer
from glinker.models.resolve import detect_backend
from glinker.text import facts_of
from glinker.types import L3Output, MentionCandidates


class BatchLinker:
    def __init__(self, config: L3Config, setup: LayerSetup):
        self.config = config
        self.backend = config.backend or detect_backend(config.model_name)
        self.scorer = make_scorer(self.backend, config, setup.template, setup.kb)

    def __call__(self, texts: list[str], candidates: list[list[MentionCandidates]]) -> L3Output:
        if len(candidates) != len(texts):
            raise InputError(f"l3_batch got candidates for {len(candidates)} texts but {len(texts)} texts")
        k = self.config.top_k
        groups = [[MentionCandidates(g.mention, g.candidates[:k] if k else g.candidates) for g in per_text]
                  for per_text in candidates]
        scores = self.scorer.score(texts, groups)
        out = []
        for facts, per_text, per_scores in zip(facts_of(texts), groups, scores, strict=True):
            rankings = per_scores
            if self.config.consistency:
                rankings = consistent_rankings(facts.text, per_text, per_scores, facts.abbreviations)
            out.append([decide(g, s, self.config.threshold, "l3", r)
                        for g, s, r in zip(per_text, per_scores, rankings, strict=True)])
        return L3Output.aligned(out)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        return self.scorer.precompute(batch_size=batch_size, progress=progress)


CONTRACT = LayerContract(
    config=L3Config,
    inputs={"texts": Socket(), "candidates": Socket(MentionCandidates)},
    output=L3Output,
    precompute=True,
)


def build(config: L3Config, setup: LayerSetup) -> BatchLinker:
    return BatchLinker(config, setup)
