"""The retriever protocol and the data it exchanges with the L2 chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

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


class Hits:
    """What one retriever found for one mention: entity rows in the order first found (a row's rank is
    its position), each with its best similarity and whether it matched a name exactly, as its
    entity's label (``exact_label``), or in canonical form. Filled row by row (:meth:`add`) or with
    arrays (:meth:`extend`), read as arrays (:meth:`table`)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._table: HitTable | None = None

    def add(self, row: int, score: float) -> None:
        self.extend(np.array([row]), score)

    def extend(self, rows: np.ndarray, scores: np.ndarray | float, exact: bool = False,
               exact_label: np.ndarray | bool = False, canonical: bool = False) -> None:
        """Add ``rows`` in order, as :meth:`add` one by one would, with these flags."""
        n = len(rows)
        flags = (np.broadcast_to(np.asarray(f, dtype=bool), n) for f in (exact, exact_label, canonical))
        self._parts.append((np.asarray(rows, np.int64), np.broadcast_to(np.asarray(scores, np.float64), n), *flags))
        self._table = None

    def __len__(self) -> int:
        return len(self.table().rows)

    def table(self) -> HitTable:
        if self._table is None:
            columns = [np.concatenate(column) for column in zip(*self._parts, strict=True)]
            self._table = HitTable.of(*columns) if columns else HitTable.of(*_EMPTY)
        return self._table


_EMPTY = (np.zeros(0, np.int64), np.zeros(0), *(np.zeros(0, bool),) * 3)


@dataclass(frozen=True)
class HitTable:
    """Distinct rows in rank order, each with its best score and flags (any of its hits had the flag)."""

    rows: np.ndarray
    scores: np.ndarray
    exact: np.ndarray
    exact_label: np.ndarray
    canonical: np.ndarray
    _sorted_rows: np.ndarray
    _rank_of_sorted: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, scores: np.ndarray, *flags: np.ndarray) -> HitTable:
        """The table of hits added in this order (the same row any number of times)."""
        distinct, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        best = np.full(len(distinct), -np.inf)
        np.maximum.at(best, inverse, scores)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        any_flag = [np.bincount(inverse, weights=f, minlength=len(distinct))[order] > 0 for f in flags]
        return cls(distinct[order], best[order], *any_flag, distinct, rank)

    def rank_of(self, rows: np.ndarray) -> np.ndarray:
        """The rank of each of ``rows``, -1 where not found (a binary search)."""
        if not len(self.rows):
            return np.full(len(rows), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_rows, rows), len(self.rows) - 1)
        return np.where(self._sorted_rows[pos] == rows, self._rank_of_sorted[pos], -1)


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
