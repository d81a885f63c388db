"""KnowledgeBase: an EntityStore plus the indexes derived from it, built lazily and kept in step.

Layers never build their own copy of the KB: they ask the KnowledgeBase shared by the executor for
the name index, the entity or name vectors of an encoder, or a FAISS index, and get the cached one
unless entities were loaded since, in which case only the new rows are embedded and added.

The KB owns its lifecycle: ``load`` (entity rows), ``open`` / ``open_dir`` and ``save_dir`` (a kb_dir,
see storage.py), ``vectors`` (embedding) and ``compact``. Its encoder is a KB-level setting: a kb_dir
holds the vectors of one encoder, and layers declare the vector spaces they read
(``require_vectors``); a kb_dir made with another encoder or template is refused when it is opened,
or when a layer declares the space, instead of silently mixing vector spaces.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from ..models.quantize import BF16_SUFFIX
from .names import NameIndex
from .reader import EntitySource, OnError
from .storage import manifest_sha256, read_manifest, verify_files, write_atomically, write_manifest
from .store import EntityStore, LoadReport
from .vector_index import VectorIndex
from .vectors import KINDS, NAME_TEMPLATE, SpaceKey, VectorSet, VectorStore


class KnowledgeBase:
    def __init__(self, store: EntityStore | None = None):
        self.store = store or EntityStore()
        self.lock = threading.RLock()
        self._names: tuple[int, NameIndex] | None = None
        self.vector_store = VectorStore()
        self.manifest: dict[str, Any] | None = None
        self.manifest_sha256: str | None = None  # of the kb_dir's manifest when opened: its generation
        self.path: Path | None = None
        self._required: set[SpaceKey] = set()

    def __len__(self) -> int:
        return len(self.store)

    # ------------------------------------------------------------------ loading and saving

    def load(self, source: EntitySource, overwrite: bool = False, on_error: OnError = "raise",
             rejects_path: str | Path | None = None) -> LoadReport:
        """Add entity rows (see :meth:`EntityStore.load`)."""
        with self.lock:
            return self.store.load(source, overwrite=overwrite, on_error=on_error, rejects_path=rejects_path)

    @classmethod
    def open(cls, kb_dir: str | Path, verify: str = "full") -> KnowledgeBase:
        kb = cls()
        kb.open_dir(kb_dir, verify=verify)
        return kb

    def open_dir(self, kb_dir: str | Path, verify: str = "full") -> dict[str, Any]:
        """Replace the contents with a kb_dir built by ``glinker kb build`` (memory-mapped, checked, nothing
        re-embedded); returns its manifest. A refused kb_dir leaves the KB as it was. A kb_dir replaced
        by a new generation while it was being opened is opened again."""
        kb_dir = Path(kb_dir)
        digest = manifest_sha256(kb_dir)
        try:
            return self._open_dir(kb_dir, verify, digest)
        except KnowledgeBaseError:
            if manifest_sha256(kb_dir) == digest:
                raise
        return self._open_dir(kb_dir, verify, manifest_sha256(kb_dir))

    def _open_dir(self, kb_dir: Path, verify: str, digest: str | None) -> dict[str, Any]:
        manifest = read_manifest(kb_dir)
        name_params = NameIndex.params_of(kb_dir / "manifest.json", manifest)
        VectorStore.check_manifest(kb_dir / "manifest.json", manifest)
        verify_files(kb_dir, manifest, EntityStore.files() + NameIndex.files() + VectorStore.files(manifest), verify)
        deep = verify != "full"
        store = EntityStore.open(kb_dir, manifest["count"], manifest["names"], utf8=deep)
        _check_same_rows(kb_dir, manifest, name_params, store.rows_sha256())
        names = NameIndex.open(kb_dir, name_params, len(store.names), len(store.ids), deep)
        vectors = VectorStore.open(kb_dir, manifest)
        for space in sorted(self._required):
            _check_space(manifest, kb_dir, *space)
        with self.lock:
            self.store = store
            self._names = (store.version, names)
            self.vector_store = vectors
            self.manifest = manifest
            self.manifest_sha256 = digest
            self.path = kb_dir
        return manifest

    def save_dir(self, out_dir: str | Path, encoder_id: str | None = None, template: str | None = None,
                 index_type: str = "auto", dtype: str = "float32", build_seconds: float | None = None,
                 progress: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write a kb_dir (atomically, after a :meth:`compact`) with the vectors of ``encoder_id``; returns
        the manifest (``extra``: more manifest keys, e.g. the generation of an update)."""

        def fill(directory: Path) -> dict[str, Any]:
            self.compact()
            for key in list(self.vector_store.indexes):  # an index behind its vectors gets their new rows
                self.vector_store.index_of(self.vector_store.sets[key])
            rows = self.store.rows_sha256()
            files = self.store.save(directory) + self.name_index().save(directory)
            vector_files, vector_fields = self.vector_store.save(directory, encoder_id, template, rows, index_type,
                                                                 dtype, progress)
            fields = {"build_seconds": build_seconds, "count": len(self.store), "names": len(self.store.names),
                      "name_index": {**self.name_index().params, "rows_sha256": rows}, **vector_fields,
                      **(extra or {})}
            return write_manifest(directory, fields, files + vector_files)

        with self.lock:
            return write_atomically(Path(out_dir), fill)

    def remove(self, ids: list[str]) -> int:
        """Retire the entities with these ids (all must be loaded; see :meth:`EntityStore.retire`): they are
        no candidates from now on, and are dropped from disk by the next :meth:`save_dir`."""
        with self.lock:
            return len(self.store.retire(ids))

    def compact(self) -> None:
        """Drop retired rows (overwritten entities) from the store and every vector set, in place."""
        with self.lock:
            if self.store.alive.all():
                return
            self.store, rows, name_rows = self.store.without_retired()
            self.vector_store.keep(rows, name_rows)
            self._names = None

    def clear(self) -> None:
        """Empty the KB (the vector spaces layers required stay required)."""
        with self.lock:
            self.store.clear()
            self._names = None
            self.vector_store.clear()
            self.manifest = None
            self.manifest_sha256 = None
            self.path = None

    # ------------------------------------------------------------------ derived indexes

    def name_index(self) -> NameIndex:
        with self.lock:
            if self._names is None or self._names[0] != self.store.version:
                index = NameIndex.build(self.store.names, self.store.name_entity_rows())
                self._names = (self.store.version, index)
            return self._names[1]

    def require_vectors(self, encoder_id: str, kind: str, template: str = NAME_TEMPLATE) -> None:
        """Declare that a layer reads ``kind`` vectors of this encoder and template: refused now if the
        opened kb_dir holds such vectors in another space, and whenever such a kb_dir is opened later."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        space = (kind, encoder_id, NAME_TEMPLATE if kind == "names" else template)
        with self.lock:
            _check_space(self.manifest, self.path, *space)
            self._required.add(space)

    def vectors(self, encoder, kind: str, template: str = NAME_TEMPLATE, batch_size: int = 64,
                progress: bool = False) -> VectorSet:
        """Vectors of all entity rows or name rows; rows added since the last call are embedded now."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        template = NAME_TEMPLATE if kind == "names" else template
        _check_space(self.manifest, self.path, kind, encoder.model_id, template)
        key = (kind, encoder.model_id, template)
        max_length = getattr(encoder, "max_length", None)
        with self.lock:
            existing = self.vector_store.sets.get(key)
            total = len(self.store.names) if kind == "names" else self.store.num_rows
            done = 0 if existing is None else existing.matrix.shape[0]
            if existing is not None and done == total:
                return existing
            fresh = self._embed(encoder, kind, template, done, total, batch_size, progress,
                                None if existing is None else existing.matrix)
            if existing is not None:
                fresh = np.concatenate([np.asarray(existing.matrix, np.float32), fresh])
                max_length = max_length if existing.max_length == max_length else None
            vector_set = VectorSet(kind, encoder.model_id, template, fresh, max_length)
            self.vector_store.sets[key] = vector_set
            return vector_set

    def _embed(self, encoder, kind: str, template: str, start: int, stop: int, batch_size: int, progress: bool,
               have: np.ndarray | None = None) -> np.ndarray:
        """Vectors of rows ``start:stop``: given in the rows, copied from a retired row of ``have`` with the
        same text, or encoded."""
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
            retired = self._retired_texts(kind, template, 0 if have is None else len(have))
            copied = np.array([retired.get(text, -1) for text in texts], dtype=np.int64)
            reuse = copied >= 0
            if reuse.any():
                out[todo[reuse]] = have[copied[reuse]]
            if not reuse.all():
                out[todo[~reuse]] = _encode_once(encoder, [t for t, r in zip(texts, reuse, strict=True) if not r],
                                                 batch_size, progress, f"embedding {kind}")
        return out

    def _retired_texts(self, kind: str, template: str, rows_with_vectors: int) -> dict[str, int]:
        """Text -> row of the retired rows (name rows for ``names``) below ``rows_with_vectors``: an entity
        re-loaded unchanged, or an unchanged name of a changed entity, keeps its vector."""
        store = self.store
        dead = np.flatnonzero(~store.alive)
        if kind == "names" and len(dead):
            dead = np.concatenate([np.arange(store.name_start[r], store.name_start[r + 1]) for r in dead])
        dead = dead[dead < rows_with_vectors]
        texts = store.names.take(dead) if kind == "names" else store.render(dead, template)
        return dict(zip(texts, dead.tolist(), strict=True))

    def vector_index(self, encoder, kind: str = "names", template: str = NAME_TEMPLATE, index_type: str = "auto",
                     batch_size: int = 64, progress: bool = False) -> VectorIndex:
        """FAISS index over ``vectors(encoder, kind, template)``; new rows are added, not rebuilt."""
        with self.lock:
            vectors = self.vectors(encoder, kind, template, batch_size=batch_size, progress=progress)
            return self.vector_store.index_of(vectors, index_type, progress)


def _check_same_rows(kb_dir: Path, manifest: dict[str, Any], name_params: dict[str, Any], rows_sha256: str) -> None:
    """Refuse a kb_dir whose name index or vectors were built from another entity table than the one it holds
    (files of two builds mixed, checksums regenerated). kb_dirs written before glinker recorded
    ``rows_sha256`` (format 1, early format 2) have nothing to compare and open as they are."""
    recorded = {"names.*.npy": name_params.get("rows_sha256"),
                **{info["file"]: info.get("rows_sha256") for info in manifest.get("vectors", {}).values()}}
    other = [name for name, digest in recorded.items() if digest is not None and digest != rows_sha256]
    if other:
        raise KnowledgeBaseError(
            f"{kb_dir}: {', '.join(other)} {'were' if len(other) > 1 else 'was'} built from another entity table "
            f"than entities.*.npy (rows_sha256 {recorded[other[0]]!s:.12} in the manifest, {rows_sha256:.12} for "
            f"the table): the kb_dir mixes files of different builds; rebuild it with `glinker kb build`")


def _encode_once(encoder, texts: list[str], batch_size: int, progress: bool, desc: str) -> np.ndarray:
    """The vector of each text, every distinct text encoded once (a name that a thousand entities share is
    one text to the encoder) and copied to its other places."""
    distinct = list(dict.fromkeys(texts))
    vectors = encoder.encode(distinct, batch_size=batch_size, progress=progress, desc=desc)
    if len(distinct) == len(texts):
        return vectors
    position = {text: i for i, text in enumerate(distinct)}
    return vectors[[position[text] for text in texts]]


def _check_space(manifest: dict[str, Any] | None, path: Path | None, kind: str, encoder_id: str, template: str) -> None:
    """Refuse ``kind`` vectors of another encoder or template than the kb_dir holds for that kind, rather than
    silently re-embedding the whole KB in another space."""
    if not manifest or not manifest.get("encoder") or kind not in manifest.get("vectors", {}):
        return
    made = manifest["encoder"]
    if made != encoder_id and made.removesuffix(BF16_SUFFIX) == encoder_id.removesuffix(BF16_SUFFIX):
        raise KnowledgeBaseError(
            f"{path}: the KB vectors were made by {made!r}, this machine runs {encoder_id!r}: int8 runs some "
            "layers in bfloat16 on CPUs that multiply it natively only, so the vectors differ; rebuild the "
            "kb_dir on this kind of CPU"
        )
    if made != encoder_id:
        raise KnowledgeBaseError(
            f"{path}: the KB vectors were made with encoder {made!r}, but the pipeline uses "
            f"{encoder_id!r}; rebuild with `glinker kb build --encoder {encoder_id}` or configure {made!r}"
        )
    built = manifest["vectors"][kind]
    if kind != "names" and built.get("template") != template:
        raise KnowledgeBaseError(
            f"{path}: the {kind} vectors were made with template {built.get('template')!r}, but the pipeline "
            f"uses {template!r}; rebuild with `glinker kb build --template ...` or change the schema template"
        )
