"""L4 reranker: scores each mention's candidates again with a second model and makes the final link.

Backends: ``gliner`` (a uni-encoder puts ``max_labels`` of a mention's distinct candidates in each
prompt; the chunks' scores are merged back onto every candidate, a repeated entity scored once),
``cross_encoder`` (pairs are scored independently, so chunking changes nothing) and ``gliclass`` (a
uni-encoder like GLiNER's, a bi-encoder against the KB's class vectors). ``backend`` unset is guessed
from the model files. After an L3 node, a mention's candidates are chunked in L3's score order, so
the best L3 candidates share a prompt. Works as L1 -> L2 -> L3 -> L4 -> L0 and L2 -> L4 -> L0.
"""

from __future__ import annotations

import numpy as np

from glinker.config import L4Config
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError
from glinker.linking import decide
from glinker.linking.backends import make_scorer
from glinker.models.resolve import detect_backend
from glinker.types import L3Entity, L3Output, MentionCandidates


class Reranker:
    def __init__(self, config: L4Config, setup: LayerSetup):
        self.config = config
        self.backend = config.backend or detect_backend(config.model_name)
        self.scorer = make_scorer(self.backend, config, setup.template, setup.kb,
                                  max_labels=config.max_labels)

    def __call__(self, texts: list[str], candidates: list[list[MentionCandidates]],
                 l3_entities: list[list[L3Entity]] | None = None) -> L3Output:
        if len(candidates) != len(texts):
            raise InputError(f"l4_reranker got candidates for {len(candidates)} texts but {len(texts)} texts")
        orders = [[np.arange(len(g.candidates)) for g in per_text] for per_text in candidates]
        if l3_entities is not None:
            orders = _l3_orders(candidates, l3_entities)
        groups = [
            [MentionCandidates(g.mention, [g.candidates[i] for i in order])
             for g, order in zip(per_text, per_order, strict=True)]
            for per_text, per_order in zip(candidates, orders, strict=True)
        ]
        scores = self.scorer.score(texts, groups)
        out = []
        for per_text, per_order, per_scores in zip(candidates, orders, scores, strict=True):
            decided = []
            for g, order, s in zip(per_text, per_order, per_scores, strict=True):
                restored = np.empty(len(order), dtype=np.float32)
                restored[order] = s
                decided.append(decide(g, restored, self.config.threshold, "l4"))
            out.append(decided)
        return L3Output.aligned(out)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        return self.scorer.precompute(batch_size=batch_size, progress=progress)


def _l3_orders(candidates: list[list[MentionCandidates]], l3_entities: list[list[L3Entity]]) -> list[list[np.ndarray]]:
    """Each mention's candidate positions, best L3 score first (stable)."""
    if len(l3_entities) != len(candidates):
        raise InputError(f"l4_reranker got L3 results for {len(l3_entities)} texts but candidates for {len(candidates)}")
    orders = []
    for t, (per_text, per_l3) in enumerate(zip(candidates, l3_entities, strict=True)):
        if len(per_l3) != len(per_text) or not all(e.serves(j, g.mention)
                                                   for j, (e, g) in enumerate(zip(per_l3, per_text, strict=True))):
            raise InputError(f"l4_reranker: text {t}: the L3 results do not match the mentions of the candidates")
        orders.append([
            np.argsort([-e.class_probs.get(c.entity_id, 0.0) for c in g.candidates], kind="stable")
            for g, e in zip(per_text, per_l3, strict=True)
        ])
    return orders


CONTRACT = LayerContract(
    config=L4Config,
    inputs={"texts": Socket(), "candidates": Socket(MentionCandidates), "l3_entities": Socket(L3Entity, required=False)},
    output=L3Output,
    precompute=True,
)


def build(config: L4Config, setup: LayerSetup) -> Reranker:
    return Reranker(config, setup)
