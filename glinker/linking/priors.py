"""Mention priors: how often annotated mentions of a surface were linked to each entity (``glinker train``
task ``priors``), mixed into L3's scores.

The table maps a normalised surface (``normalize_name``: case, accents and punctuation folded) to the
count of each entity its annotated mentions were linked to. A mention whose surface is in the table
with at least ``min_count`` annotations gets, for each candidate, ``(1 - w) * score + w * share`` where
``share`` is the candidate's part of those annotations (0 for the others); mentions without a prior
keep their scores. An annotated corpus's conventions ("dyskinesia" after a drug is the drug-induced
kind there) then outweigh a name that merely matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson

from ..errors import ConfigError
from ..kb.normalize import normalize_name
from ..types import MentionCandidates

PRIORS_FILE = "priors.json"
FORMAT = "glinker-mention-priors"


class MentionPriors:
    def __init__(self, surfaces: dict[str, dict[str, int]]):
        self.surfaces = surfaces

    @classmethod
    def count(cls, pairs: Iterable[tuple[str, str]]) -> MentionPriors:
        """From ``(mention text, entity id)`` pairs."""
        counts: dict[str, Counter] = {}
        for text, entity_id in pairs:
            key = normalize_name(text)
            if key:
                counts.setdefault(key, Counter())[entity_id] += 1
        return cls({key: dict(c.most_common()) for key, c in sorted(counts.items())})

    def save(self, path: Path) -> None:
        mentions = sum(sum(c.values()) for c in self.surfaces.values())
        body = {"format": FORMAT, "version": 1, "surface_count": len(self.surfaces), "mentions": mentions,
                "surfaces": self.surfaces}
        path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: str | Path) -> MentionPriors:
        """From a ``priors.json`` or the folder that holds one (``glinker train``'s ``OUT/model``)."""
        path = Path(path)
        path = path / PRIORS_FILE if path.is_dir() else path
        try:
            body = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"priors {path}: cannot read it ({exc})") from None
        surfaces = body.get("surfaces") if isinstance(body, dict) and body.get("format") == FORMAT else None
        if not isinstance(surfaces, dict) or not all(
                isinstance(c, dict) and all(isinstance(n, int) and n > 0 for n in c.values()) for c in surfaces.values()):
            raise ConfigError(f"priors {path}: not a {FORMAT} file ({{'format', 'surfaces': {{surface: "
                              f"{{entity_id: count}}}}}}, as glinker train task 'priors' writes)")
        return cls(surfaces)

    def shares(self, text: str, min_count: int = 1) -> dict[str, float] | None:
        """Each entity's share of the annotations of ``text``'s surface (None: fewer than ``min_count``)."""
        counts = self.surfaces.get(normalize_name(text))
        total = sum(counts.values()) if counts else 0
        return {e: n / total for e, n in counts.items()} if total >= max(min_count, 1) else None

    def mixed(self, group: MentionCandidates, scores: np.ndarray, weight: float, min_count: int = 1) -> np.ndarray:
        """``group``'s candidate scores mixed with their shares (see the module docstring)."""
        shares = self.shares(group.mention.text, min_count)
        if shares is None:
            return scores
        prior = np.array([shares.get(c.entity_id, 0.0) for c in group.candidates])
        return ((1 - weight) * np.asarray(scores, dtype=np.float64) + weight * prior).astype(np.float32)
