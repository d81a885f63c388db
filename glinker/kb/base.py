"""KnowledgeBase: an EntityStore plus the indexes derived from it, built lazily and kept in step.

Layers never build their own copy of the KB: they ask the KnowledgeBase shared by the executor for
the name index, the entity or name vectors of an encoder, or a FAISS index, and get the cached one
unless entities were loaded since, in which case only the new rows are embedded and added.
A KnowledgeBase opened from a kb_dir refuses an encoder or template other than the one it was built
with, instead of silently mixing vector spaces.
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


KINDS = ("names", "entities", "labels")


@dataclass
class VectorSet:
    """Vectors for one encoder: kind "names" has one per name row (label and aliases, unit length, the
    FAISS retrieval space); "entities" one per entity row made with a template (unit length, dense
    linking); "labels" one per entity row from a GLiNER bi-encoder's label encoder (used as is)."""

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
        self.faiss_indexes: dict[tuple[str, str, str], VectorIndex] = {}
        self.manifest: dict[str, Any] | None = None
        self.path: Path | None = None

    def __len__(self) -> int:
        return len(self.store)

    # ------------------------------------------------------------------ loading and saving

    def load(
        self,
        source: str | Path | Iterable[Mapping] | Mapping,
        overwrite: bool = False,
        on_error: OnError = "raise",
        rejects_path: str | Path | None = None,
    ) -> LoadReport:
        with self.lock:
            return self.store.load(source, overwrite=overwrite, on_error=on_error, rejects_path=rejects_path)

    @classmethod
    def open(cls, kb_dir: str | Path, verify: str = "full") -> KnowledgeBase:
        kb = cls()
        kb.open_dir(kb_dir, verify=verify)
        return kb

    def open_dir(self, kb_dir: str | Path, verify: str = "full") -> dict[str, Any]:
        """Replace the contents with a kb_dir built by ``glinker kb build`` (memory-mapped, checked)."""
        from .storage import load_kb

        return load_kb(self, kb_dir, verify=verify)

    def save_dir(self, out_dir: str | Path, encoder_id: str | None = None, template: str | None = None,
                 index_type: str = "auto", dtype: str = "float32", build_seconds: float | None = None,
                 progress: bool = False) -> dict[str, Any]:
        """Write a kb_dir (atomically) with the vectors of ``encoder_id``; returns the manifest."""
        from .storage import save_kb

        with self.lock:
            return save_kb(self, out_dir, encoder_id, template, index_type, dtype, build_seconds, progress)

    def clear(self) -> None:
        with self.lock:
            self.store.clear()
            self._names = None
            self.vector_sets.clear()
            self.faiss_indexes.clear()
            self.manifest = None
            self.path = None

    # ------------------------------------------------------------------ derived indexes

    def name_index(self) -> NameIndex:
        with self.lock:
            if self._names is None or self._names[0] != self.store.version:
                index = NameIndex.build(self.store.names, self.store.name_entity_rows())
                self._names = (self.store.version, index)
            return self._names[1]

    def check_encoder(self, encoder_id: str, kind: str, template: str) -> None:
        """Refuse names/entities vectors of another encoder or template than the kb_dir holds for them,
        rather than silently re-embedding the whole KB in another space."""
        m = self.manifest
        if not m or not m.get("encoder") or kind not in m.get("vectors", {}):
            return
        if m["encoder"] != encoder_id:
            raise KnowledgeBaseError(
                f"{self.path}: the KB vectors were made with encoder {m['encoder']!r}, but the pipeline uses "
                f"{encoder_id!r}; rebuild with `glinker kb build --encoder {encoder_id}` or configure {m['encoder']!r}"
            )
        built = m.get("vectors", {}).get(kind)
        if kind == "entities" and built and built.get("template") != template:
            raise KnowledgeBaseError(
                f"{self.path}: entity vectors were made with template {built.get('template')!r}, but the pipeline "
                f"uses {template!r}; rebuild with `glinker kb build --template ...` or change the schema template"
            )

    def vectors(self, encoder, kind: str, template: str = NAME_TEMPLATE, batch_size: int = 64,
                progress: bool = False) -> VectorSet:
        """Vectors of all entity rows or name rows; rows added since the last call are embedded now."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        template = NAME_TEMPLATE if kind == "names" else template
        self.check_encoder(encoder.model_id, kind, template)
        key = (kind, encoder.model_id, template)
        with self.lock:
            existing = self.vector_sets.get(key)
            total = len(self.store.names) if kind == "names" else self.store.num_rows
            done = 0 if existing is None else existing.matrix.shape[0]
            if existing is not None and done == total:
                return existing
            fresh = self._embed(encoder, kind, template, done, total, batch_size, progress)
            matrix = fresh if existing is None else np.concatenate([np.asarray(existing.matrix, np.float32), fresh])
            vector_set = VectorSet(kind, encoder.model_id, template, matrix)
            self.vector_sets[key] = vector_set
            return vector_set

    def _embed(self, encoder, kind: str, template: str, start: int, stop: int, batch_size: int, progress: bool) -> np.ndarray:
        rows = range(start, stop)
        out = np.zeros((len(rows), encoder.dim), dtype=np.float32)
        todo = np.arange(len(rows))
        given = self.store.row_vectors.get("entities")
        if kind != "names" and given is not None and given[1] == encoder.model_id:
            have = given[0][start:stop]
            known = ~np.isnan(have).any(axis=1)
            out[known] = have[known]
            if kind == "entities":
                out[known] /= np.maximum(np.linalg.norm(have[known], axis=1, keepdims=True), 1e-12)
            todo = np.flatnonzero(~known)
        if len(todo):
            texts = (self.store.names.take(np.asarray(rows)[todo]) if kind == "names"
                     else self.store.render(np.asarray(rows)[todo], template))
            out[todo] = encoder.encode(texts, batch_size=batch_size, progress=progress, desc=f"embedding {kind}")
        return out

    def vector_index(self, encoder, kind: str = "names", template: str = NAME_TEMPLATE, index_type: str = "auto",
                     batch_size: int = 64, progress: bool = False) -> VectorIndex:
        """FAISS index over ``vectors(encoder, kind, template)``; new rows are added, not rebuilt."""
        with self.lock:
            vectors = self.vectors(encoder, kind, template, batch_size=batch_size, progress=progress)
            key = (kind, vectors.encoder_id, vectors.template)
            index = self.faiss_indexes.get(key)
            if index is None or (index_type != "auto" and index.kind != index_type):
                index = VectorIndex.build(vectors.matrix, index_type, progress=progress)
                self.faiss_indexes[key] = index
            elif index.size < len(vectors.matrix):
                index.add(vectors.matrix[index.size :])
            return index
