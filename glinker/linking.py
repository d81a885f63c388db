"""Turning per-candidate scores into link decisions (shared by L3 and L4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import L3Entity, MentionCandidates


def decide(group: MentionCandidates, scores: Sequence[float] | np.ndarray, threshold: float, stage: str) -> L3Entity:
    """Link a mention to its best-scoring candidate if that score reaches ``threshold``.

    Ties go to the more popular entity, then the smaller entity id. The link is always one of the
    mention's own candidates, or None.
    """
    m = group.mention
    cands = group.candidates
    probs = {c.entity_id: float(s) for c, s in zip(cands, scores, strict=True)}
    if not cands:
        return L3Entity(m.text, m.start, m.end, None, "", 0.0, probs, stage)
    best = min(range(len(cands)), key=lambda i: (-float(scores[i]), -cands[i].popularity, cands[i].entity_id))
    score = float(scores[best])
    if score < threshold:
        return L3Entity(m.text, m.start, m.end, None, "", score, probs, stage)
    return L3Entity(m.text, m.start, m.end, cands[best].entity_id, cands[best].label, score, probs, stage)


def context_window(text: str, start: int, end: int, chars: int) -> str:
    """The mention with up to ``chars`` characters each side, cut at word boundaries."""
    left = text[max(0, start - chars) : start]
    right = text[end : end + chars]
    if start - chars > 0 and " " in left:
        left = left[left.index(" ") + 1 :]
    if end + chars < len(text) and " " in right:
        right = right[: right.rindex(" ")]
    return f"{left}{text[start:end]}{right}"
