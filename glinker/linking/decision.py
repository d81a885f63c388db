"""Turning a mention's candidate scores into its link (shared by L3 and L4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import L3Entity, MentionCandidates


def decide(group: MentionCandidates, scores: Sequence[float] | np.ndarray, threshold: float, stage: str,
           ranking: Sequence[float] | np.ndarray | None = None) -> L3Entity:
    """Link a mention to its best candidate if that candidate's score reaches ``threshold``.

    "Best" is the highest ``ranking`` (default: the scores); ties go to the more popular entity, then
    the smaller entity id. The link is always one of the mention's own candidates, or None.
    """
    m = group.mention
    cands = group.candidates
    probs = {c.entity_id: float(s) for c, s in zip(cands, scores, strict=True)}
    if not cands:
        return L3Entity(m.text, m.start, m.end, None, "", 0.0, probs, stage)
    ranking = scores if ranking is None else ranking
    best = min(range(len(cands)), key=lambda i: (-float(ranking[i]), -cands[i].popularity, cands[i].entity_id))
    score = float(scores[best])
    if score < threshold:
        return L3Entity(m.text, m.start, m.end, None, "", score, probs, stage)
    return L3Entity(m.text, m.start, m.end, cands[best].entity_id, cands[best].label, score, probs, stage)
