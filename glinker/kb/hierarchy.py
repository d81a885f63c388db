"""Ancestor votes over a parent field of the KB (e.g. MEDIC's ``parent_ids``).

The best candidates of a mention vote for their ancestors, a vote worth ``1 / (rank * depth)``:
an entity that several good candidates descend from is likely what a vague mention
("nephropathy") means ("Kidney Diseases"). Shared by L2 (adding such ancestors as candidates) and
the dense L3 (using the votes as a feature).
"""

from __future__ import annotations

from collections import defaultdict

from .store import EntityStore


def ancestor_votes(store: EntityStore, ranked_rows: list[int], field: str, depth: int,
                   from_top: int) -> tuple[dict[int, float], dict[int, int]]:
    """Votes for every ancestor (up to ``depth`` levels) of the first ``from_top`` rows, and for each
    ancestor its best-ranked descendant among them."""
    votes: dict[int, float] = defaultdict(float)
    first_voter: dict[int, int] = {}
    for rank, row in enumerate(ranked_rows[:from_top]):
        frontier = [row]
        for level in range(1, depth + 1):
            parent_ids = [p for r in frontier for p in _as_list(store.metadata(r).get(field))]
            frontier = [int(r) for r in store.rows_of(parent_ids) if r >= 0]
            for parent in frontier:
                votes[parent] += 1.0 / ((rank + 1) * level)
                first_voter.setdefault(parent, row)
    return votes, first_voter


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
