"""GLiClass linking (backend "gliclass"): a mention in its context is the text to classify, its own
candidates, rendered with the schema template, are the classes.

The mention is marked in its context (``inputs.marked_context``, ``context_chars`` each side), as the
cross-encoder reads it. A uni-encoder puts a mention's distinct candidates in its prompt,
``max_labels`` at a time (each candidate is scored on its own sigmoid, so the chunks' scores merge
as they are); a bi-encoder encodes the context once and scores it against class vectors that are made
once for the whole KB (kept with the loaded KB, like the GLiNER bi-encoder's label vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.gliclass import class_encoder, get_gliclass
from ..types import MentionCandidates
from .inputs import CandidateVectors, candidate_chunks, marked_context


@dataclass(frozen=True)
class Target:
    """Where a model row's scores go: mention ``m`` of text ``t``, candidate positions ``where``, each
    reading class ``class_of`` of the row."""

    t: int
    m: int
    where: np.ndarray
    class_of: np.ndarray


class GliclassLinkScorer:
    """L3/L4 backend "gliclass": each mention, in its context, classified over its own candidates."""

    def __init__(self, kb, model_name: str, template: str, device: str = "cpu", max_length: int = 512,
                 batch_size: int = 8, token: str | None = None, max_labels: int | None = None,
                 context_chars: int = 100, use_precomputed: bool = True, cache_embeddings: bool = False,
                 quantize: str = "none"):
        self.model = get_gliclass(model_name, device=device, token=token, quantize=quantize)
        self.template = template
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_labels = max_labels
        self.context_chars = context_chars
        self.classes = None
        if self.model.is_bi:
            self.classes = CandidateVectors(kb, class_encoder(self.model), template, use_precomputed,
                                        cache_embeddings)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Embed every KB entity as a class (bi-encoders with precomputed embeddings only)."""
        return 0 if self.classes is None else self.classes.precompute(batch_size, progress)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention."""
        out = [[np.zeros(len(g.candidates), dtype=np.float32) for g in per_text] for per_text in groups]
        contexts = [(t, m, g.candidates, marked_context(texts[t], g.mention.start, g.mention.end, self.context_chars))
                    for t, per_text in enumerate(groups) for m, g in enumerate(per_text) if g.candidates]
        if contexts:
            (self._score_bi if self.model.is_bi else self._score_uni)(contexts, out)
        return out

    def _score_uni(self, contexts, out: list[list[np.ndarray]]) -> None:
        """One prompt per mention and chunk of at most ``max_labels`` of its distinct candidates."""
        targets, prompts = [], []
        for t, m, candidates, context in contexts:
            for classes, where, class_of in candidate_chunks(candidates, self.template, self.max_labels):
                targets.append(Target(t, m, where, class_of))
                prompts.append(self.model.prompt(context, classes))
        ids = self.model.prompt_ids(prompts, self.max_length)
        counts = [int(x.class_of.max()) + 1 for x in targets]

        def probabilities(idx: np.ndarray) -> list[np.ndarray]:
            return self.model.uni_probabilities([ids[i] for i in idx], [counts[i] for i in idx])

        for idx, probs in self.model.batched(probabilities, [len(x) for x in ids], self.batch_size):
            for i, p in zip(idx, probs, strict=True):
                target = targets[i]
                out[target.t][target.m][target.where] = p[target.class_of]

    def _score_bi(self, contexts, out: list[list[np.ndarray]]) -> None:
        """Each mention's context against the class vectors of its distinct candidates."""
        unique = {c.entity_id: c for _, _, candidates, _ in contexts for c in candidates}
        row_of = {k: i for i, k in enumerate(unique)}
        table = self.classes.of(list(unique.values()))
        targets, rows = [], []
        for t, m, candidates, _ in contexts:
            keys = {k: i for i, k in enumerate(dict.fromkeys(c.entity_id for c in candidates))}
            rows.append(np.array([row_of[k] for k in keys]))
            class_of = np.array([keys[c.entity_id] for c in candidates])
            targets.append(Target(t, m, np.arange(len(candidates)), class_of))

        def probabilities(idx: np.ndarray) -> np.ndarray:
            width = max(len(rows[i]) for i in idx)
            mask = np.zeros((len(idx), width), dtype=bool)
            vectors = np.zeros((len(idx), width, table.shape[1]), dtype=np.float32)
            for b, i in enumerate(idx):
                mask[b, : len(rows[i])] = True
                vectors[b, : len(rows[i])] = table[rows[i]]
            return self.model.bi_probabilities([contexts[i][3] for i in idx], vectors, mask, self.max_length)

        lengths = [len(context) for *_, context in contexts]
        for idx, probs in self.model.batched(probabilities, lengths, self.batch_size):
            for b, i in enumerate(idx):
                target = targets[i]
                out[target.t][target.m][target.where] = probs[b, target.class_of]
