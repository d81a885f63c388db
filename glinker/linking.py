"""Turning per-candidate scores into link decisions (shared by L3 and L4)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .kb.normalize import normalize_name
from .text import abbreviations
from .types import L3Entity, MentionCandidates


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


def consistent_rankings(text: str, groups: list[MentionCandidates], scores: list[np.ndarray]) -> list[np.ndarray]:
    """One sense per discourse: mentions of a text with the same normalised surface, or a short form
    and the long form it abbreviates there ("Parkinson's disease (PD)"), are ranked by the sum of
    their scores per entity, so they agree unless a mention lacks the group's best candidate."""
    defined = {normalize_name(short): normalize_name(long) for short, long in abbreviations(text).items()}
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        surface = normalize_name(group.mention.text)
        members[defined.get(surface, surface)].append(i)
    rankings = list(scores)
    for idx in members.values():
        if len(idx) < 2:
            continue
        total: dict[str, float] = defaultdict(float)
        for i in idx:
            for cand, score in zip(groups[i].candidates, scores[i], strict=True):
                total[cand.entity_id] += float(score)
        for i in idx:
            rankings[i] = np.array([total[c.entity_id] for c in groups[i].candidates], dtype=np.float32)
    return rankings


def context_window(text: str, start: int, end: int, chars: int) -> str:
    """The mention with up to ``chars`` characters each side, cut at word boundaries."""
    left = text[max(0, start - chars) : start]
    right = text[end : end + chars]
    if start - chars > 0 and " " in left:
        left = left[left.index(" ") + 1 :]
    if end + chars < len(text) and " " in right:
        right = right[: right.rindex(" ")]
    return f"{left}{text[start:end]}{right}"
