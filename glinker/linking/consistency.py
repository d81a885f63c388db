"""One sense per discourse: mentions of a text that name the same thing are ranked together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from ..kb.normalize import normalize_name
from ..text import abbreviations
from ..types import MentionCandidates


def consistent_rankings(text: str, groups: list[MentionCandidates], scores: list[np.ndarray],
                        defined: Mapping[str, str] | None = None) -> list[np.ndarray]:
    """One sense per discourse: mentions of a text with the same normalised surface, or a short form
    and the long form it abbreviates there ("Parkinson's disease (PD)"), are ranked by the sum of
    their scores per entity, so they agree unless a mention lacks the group's best candidate.
    ``defined``: the text's abbreviations, when already found."""
    found = abbreviations(text) if defined is None else defined
    defined = {normalize_name(short): normalize_name(long) for short, long in found.items()}
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
