"""A vector index split into shards, each held by a Ray actor (the ``ray`` extra).

Rows ``offsets[i]:offsets[i + 1]`` of the vectors go to shard ``i``, which builds its own
:class:`VectorIndex` over them (or memory-maps them from a kb_dir's ``vectors.names.npy``). A query
batch is sent to every shard at once; each answers its own top k, and the answers are merged by
(score desc, row asc), the order one index over all the rows gives, ties included. With ``flat``
shards (the default) the result equals the KB's own exact search, scores to the bit: shard borders
fall on the blocks that exact search scores at once.

    sharded = ShardedIndex.from_kb_dir("kb_dir/", shards=4)
    install(kb, sharded)   # the KB's faiss layers now search the shards
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .vector_index import BLOCK_ROWS, VectorIndex, best_of


class _Shard:
    """One shard's index (the body of a Ray actor)."""

    def __init__(self, vectors: np.ndarray | str, lo: int, hi: int, kind: str, search: dict[str, Any]):
        if isinstance(vectors, str):
            vectors = np.load(vectors, mmap_mode="r", allow_pickle=False)[lo:hi]
        self.index = VectorIndex.build(vectors, kind, search=search or None)

    def size(self) -> int:
        return self.index.size

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def configure(self, search: dict[str, Any]) -> None:
        self.index.configure(**search)


class ShardedIndex:
    """Searches like a :class:`VectorIndex` over all rows; each shard answers from its own actor."""

    def __init__(self, actors: list[Any], offsets: np.ndarray, kind: str, dim: int):
        self.actors = actors
        self.offsets = offsets
        self.kind = kind
        self.dim = dim
        self.params: dict[str, Any] = {"shards": len(actors)}

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, shards: int = 4, kind: str = "flat", search: dict | None = None,
                    actor_options: dict[str, Any] | None = None) -> ShardedIndex:
        """Shards of ``matrix`` (rows split evenly), each sent to its actor."""
        import ray

        offsets = _split(len(matrix), shards)
        actor = ray.remote(_Shard).options(**(actor_options or {}))
        actors = [actor.remote(np.ascontiguousarray(matrix[lo:hi]), 0, hi - lo, kind, search or {})
                  for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]
        return cls._ready(actors, offsets, kind, matrix.shape[1])

    @classmethod
    def from_kb_dir(cls, kb_dir: str | Path, shards: int = 4, kind: str = "flat", search: dict | None = None,
                    actor_options: dict[str, Any] | None = None) -> ShardedIndex:
        """Shards of a kb_dir's name vectors: each actor memory-maps its rows of ``vectors.names.npy`` (the
        kb_dir must be readable at the same path on every node)."""
        import ray

        path = Path(kb_dir).resolve() / "vectors.names.npy"
        rows, dim = np.load(path, mmap_mode="r", allow_pickle=False).shape
        offsets = _split(rows, shards)
        actor = ray.remote(_Shard).options(**(actor_options or {}))
        actors = [actor.remote(str(path), int(lo), int(hi), kind, search or {})
                  for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]
        return cls._ready(actors, offsets, kind, dim)

    @classmethod
    def _ready(cls, actors: list[Any], offsets: np.ndarray, kind: str, dim: int) -> ShardedIndex:
        """Wait until every actor has built its index, and check it holds its rows."""
        import ray

        sizes = ray.get([a.size.remote() for a in actors])
        if sizes != np.diff(offsets).tolist():
            raise RuntimeError(f"shards hold {sizes} vectors, expected {np.diff(offsets).tolist()}")
        return cls(actors, offsets, kind, dim)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k), best first, ties by row; missing hits have row -1."""
        import ray

        k = max(1, min(k, self.size)) if self.size else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        ref = ray.put(queries)
        answers = ray.get([a.search.remote(ref, k) for a in self.actors])
        scores = np.concatenate([s for s, _ in answers], axis=1)
        rows = np.concatenate([np.where(i >= 0, i + lo, -1) for (_, i), lo in zip(answers, self.offsets, strict=False)],
                              axis=1)
        missing = np.iinfo(np.int64).max  # ranked after every real row
        scores, rows = best_of(np.where(rows >= 0, scores, -np.inf), np.where(rows >= 0, rows, missing), k)
        return scores, np.where(rows == missing, -1, rows)

    def configure(self, **search: Any) -> None:
        """Override every shard's search parameters (see VectorIndex.configure)."""
        import ray

        ray.get([a.configure.remote(search) for a in self.actors])

    def extend_to(self, matrix: np.ndarray) -> None:
        if len(matrix) != self.size:
            raise ValueError("a sharded index cannot take new rows; shard the KB again")

    def shutdown(self) -> None:
        """End the shard actors."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def install(kb, sharded: ShardedIndex, encoder_id: str | None = None) -> None:
    """Make ``kb``'s faiss layers search ``sharded`` instead of their own index of the name vectors."""
    key = next(key for key in kb.vector_store.sets if key[0] == "names" and encoder_id in (None, key[1]))
    if len(kb.vector_store.sets[key].matrix) != sharded.size:
        raise ValueError(f"the KB has {len(kb.vector_store.sets[key].matrix)} name vectors, the shards {sharded.size}")
    kb.vector_store.indexes[key] = sharded


def _split(rows: int, shards: int) -> np.ndarray:
    """Shard borders: as even as can be on multiples of BLOCK_ROWS, so that a flat shard scores each row in
    the same block of rows as one index would (BLAS sums depend on a row's place in its block); a KB of
    fewer than ``shards`` blocks leaves the last shards empty."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    borders = np.round(np.linspace(0, rows, shards + 1) / BLOCK_ROWS).astype(np.int64) * BLOCK_ROWS
    borders[-1] = rows
    return np.minimum(borders, rows)
