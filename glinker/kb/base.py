"""KnowledgeBase: an EntityStore plus the indexes derived from it, built lazily and kept in step.

Layers never build their own copy of the KB: they ask the KnowledgeBase shared by the executor for
the name index, the entity or name vectors of an encoder, or a FAISS index, and get the cached one
unless entities were loaded since, in which case only the new rows are embedded and added.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from .names import NameIndex
from .reader import OnError
from .store import EntityStore, LoadReport
from .vector_index import VectorIndex

NAME_TEMPLATE = "{label}"


@dataclass
class VectorSet:
    """Vectors of every entity row (kind "entities") or name row (kind "names") for one encoder."""

    kind: str
    encoder_id: str
    template: str
    matrix: np.ndarray  # float32 or float16, unit rows


class KnowledgeBase:
    def __init__(self, store: EntityStore | None = None):
        self.store = store or EntityStore()
        self.lock = threading.RLock()
        self._names: tuple[int, NameIndex] | None = None
        self.vector_sets: dict[tuple[str, str, str], VectorSet] = {}
        self.faiss_indexes: dict[tuple[str, str, str, str], Any] = {}
        self.manifest: dict[str, Any] | None = None
        self.path: Path | None = None

    def __len__(self) -> int:
        return len(self.store)

    def load(
        self,
        source: str | Path | Iterable[Mapping] | Mapping,
        overwrite: bool = False,
        on_error: OnError = "raise",
        rejects_path: str | Path | None = None,
    ) -> LoadReport:
        with self.lock:
            return self.store.load(source, overwrite=overwrite, on_error=on_error, rejects_path=rejects_path)

    def clear(self) -> None:
        with self.lock:
            self.store.clear()
            self._names = None
            self.vector_sets.clear()
            self.faiss_indexes.clear()
            self.manifest = None

    # ------------------------------------------------------------------ derived indexes

    def name_index(self) -> NameIndex:
        with self.lock:
            if self._names is None or self._names[0] != self.store.version:
                index = NameIndex.build(self.store.names, self.store.name_entity_rows())
                self._names = (self.store.version, index)
            return self._names[1]

    def vectors(self, encoder, kind: str, template: str = NAME_TEMPLATE, batch_size: int = 64,
                progress: bool = False) -> VectorSet:
        """Vectors of all entity rows or name rows; rows added since the last call are embedded now."""
        if kind not in ("entities", "names"):
            raise ValueError(f"kind must be 'entities' or 'names', got {kind!r}")
        key = (kind, encoder.model_id, template if kind == "entities" else NAME_TEMPLATE)
        with self.lock:
            existing = self.vector_sets.get(key)
            total = self.store.num_rows if kind == "entities" else len(self.store.names)
            done = 0 if existing is None else existing.matrix.shape[0]
            if existing is not None and done == total:
                return existing
            texts = self._texts(kind, key[2], done, total)
            fresh = encoder.encode(texts, batch_size=batch_size, progress=progress, desc=f"embedding {kind}")
            matrix = fresh if existing is None else np.concatenate([np.asarray(existing.matrix), fresh])
            vector_set = VectorSet(kind, encoder.model_id, key[2], matrix)
            self.vector_sets[key] = vector_set
            return vector_set

    def vector_index(self, encoder, kind: str = "names", template: str = NAME_TEMPLATE, index_type: str = "auto",
                     batch_size: int = 64, progress: bool = False) -> VectorIndex:
        """FAISS index over ``vectors(encoder, kind, template)``; new rows are added, not rebuilt."""
        with self.lock:
            vectors = self.vectors(encoder, kind, template, batch_size=batch_size, progress=progress)
            key = (kind, vectors.encoder_id, vectors.template, index_type)
            index = self.faiss_indexes.get(key)
            if index is None:
                index = VectorIndex.build(vectors.matrix, index_type, progress=progress)
                self.faiss_indexes[key] = index
            elif index.size < len(vectors.matrix):
                index.add(vectors.matrix[index.size :])
            return index

    def _texts(self, kind: str, template: str, start: int, stop: int) -> list[str]:
        if kind == "names":
            return self.store.names.take(range(start, stop))
        return self.store.render(range(start, stop), template)

    def check_encoder(self, encoder_id: str) -> None:
        """Refuse to mix vectors of different encoders (a kb_dir records its encoder)."""
        if self.manifest and self.manifest.get("encoder") not in (None, encoder_id):
            raise KnowledgeBaseError(
                f"{self.path}: the KB vectors were made with encoder {self.manifest['encoder']!r}, "
                f"but the pipeline uses {encoder_id!r}; rebuild with `glinker kb build --encoder {encoder_id}`"
            )
