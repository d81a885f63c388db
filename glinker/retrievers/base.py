"""The retriever protocol and the data it exchanges with the L2 chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import L2Config, L2LayerConfig
from ..kb import KnowledgeBase


@dataclass(frozen=True, slots=True)
class Query:
    """What L2 searches for one mention: its text, then the long form of the abbreviation it is (if
    the text defines one); ``text``, ``start`` and ``end`` place it in its text (None without texts)."""

    strings: tuple[str, ...]
    text: str | None = None
    start: int = 0
    end: int = 0


@dataclass
class Hits:
    """What one retriever found for one mention: entity row -> (rank, similarity)."""

    found: dict[int, tuple[int, float]] = field(default_factory=dict)
    exact: set[int] = field(default_factory=set)
    exact_label: set[int] = field(default_factory=set)
    canonical: set[int] = field(default_factory=set)

    def add(self, row: int, score: float) -> None:
        best = self.found.get(row)
        if best is None:
            self.found[row] = (len(self.found), score)
        elif score > best[1]:
            self.found[row] = (best[0], score)


class Retriever:
    """Finds KB entity rows for every mention of a batch at once.

    ``needs_encoder``: the layer only works with the chain's ``embeddings`` set (checked when the
    config is validated). ``precompute`` builds ahead of time what the first search would build.
    """

    needs_encoder: ClassVar[bool] = False

    def __init__(self, layer: L2LayerConfig, chain: L2Config, kb: KnowledgeBase):
        self.layer = layer
        self.chain = chain
        self.kb = kb

    def search(self, queries: list[Query]) -> list[Hits]:
        raise NotImplementedError

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Vectors embedded or indexed ahead of time (none by default)."""
        return 0
