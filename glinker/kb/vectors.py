"""The vector store of a KB: vectors of its rows per encoder, the FAISS indexes over them, and their files.

In a kb_dir (all made by the one encoder the manifest names)::

    vectors.names.npy        one unit vector per name row (label and aliases), memory-mapped on load
    vectors.entities.npy     one unit vector per entity row, made with the template
    vectors.labels.npy       one vector per entity row from a GLiNER bi-encoder's label encoder
    index.names.faiss        FAISS index over the name vectors (hnsw/ivf; flat search needs none)
    index.names.refine.faiss 8-bit codes of the name vectors that ivf hits are re-scored against (refine sq8)
    index.names.refine.order.npy  the row of each of those codes (they are in the IVF lists' order)

The manifest's ``vectors`` entry of each kind records what its file depends on: template, rows,
whether the rows are unit length, and the encoder's ``max_length`` (null where unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from .checks import check_rows, check_size, corrupted, is_count, manifest_error, read_file
from .columns import load_array, release_pages, save_in_blocks
from .sq_refine import REFINES, SQ8, order_path, refine_path
from .vector_index import INDEX_TYPES, RECALL_TARGET, VectorIndex, lists_ordered

KINDS = ("names", "entities", "labels")
NAME_TEMPLATE = "{label}"
INDEX_FILE = "index.names.faiss"

SpaceKey = tuple[str, str, str]  # (kind, encoder id, template)


@dataclass
class VectorSet:
    """Vectors for one encoder: kind "names" has one per name row (label and aliases, unit length, the
    FAISS retrieval space); "entities" one per entity row made with a template (unit length, dense
    linking); "labels" one per entity row from a GLiNER bi-encoder's label encoder (used as is)."""

    kind: str
    encoder_id: str
    template: str
    matrix: np.ndarray  # float32 or float16
    max_length: int | None = None  # the encoder's token limit when the rows were made (None: unknown or mixed)

    @property
    def key(self) -> SpaceKey:
        return (self.kind, self.encoder_id, self.template)

    @property
    def normalized(self) -> bool:
        return self.kind != "labels"


class VectorStore:
    """Vector sets by (kind, encoder id, template), and the FAISS index of each set that has one."""

    def __init__(self, sets: dict[SpaceKey, VectorSet] | None = None,
                 indexes: dict[SpaceKey, VectorIndex] | None = None):
        self.sets = sets if sets is not None else {}
        self.indexes = indexes if indexes is not None else {}
        self.recall_target = RECALL_TARGET
        self.refine = "vectors"
        self.search: dict[str, Any] = {}

    def configure(self, recall_target: float | None = None, refine: str | None = None, **search: Any) -> None:
        """Search parameters: ``recall_target`` that ivf indexes built from now on are tuned to and what they
        re-score hits against (``refine``: vectors or sq8), or fixed ``nprobe``/``k_factor``/``efSearch`` for
        them and for the indexes held now (overriding the manifest's)."""
        if recall_target is not None:
            if not 0 < recall_target <= 1:
                raise ValueError(f"recall_target must be in (0, 1], got {recall_target!r}")
            self.recall_target = recall_target
        if refine is not None:
            if refine not in REFINES:
                raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
            if refine == SQ8 and not _faiss_maps_codes():
                raise ValueError("refine sq8 needs faiss-cpu 1.11 or later (memory-mapped codes); upgrade faiss")
            self.refine = refine
        for index in self.indexes.values():
            index.configure(**search)
        self.search.update(search)

    def _build(self, matrix: np.ndarray, index_type: str, progress: bool) -> VectorIndex:
        return VectorIndex.build(matrix, index_type, progress=progress, recall_target=self.recall_target,
                                 search=self.search, refine=self.refine)

    def clear(self) -> None:
        self.sets.clear()
        self.indexes.clear()

    def keep(self, rows: np.ndarray, name_rows: np.ndarray) -> None:
        """Keep only these entity rows and name rows of every set (after a compaction); indexes are rebuilt."""
        for vector_set in self.sets.values():
            vector_set.matrix = np.asarray(vector_set.matrix)[name_rows if vector_set.kind == "names" else rows]
        self.indexes.clear()

    def index_of(self, vector_set: VectorSet, index_type: str = "auto", progress: bool = False) -> VectorIndex:
        """The FAISS index over ``vector_set``: built once, then extended with the rows added since."""
        index = self.indexes.get(vector_set.key)
        if index is None or (index_type != "auto" and index.kind != index_type):
            index = self._build(vector_set.matrix, index_type, progress)
            self.indexes[vector_set.key] = index
        elif index.size < len(vector_set.matrix):
            index.extend_to(vector_set.matrix)
        return index

    # ------------------------------------------------------------------ kb_dir files

    def save(self, directory: Path, encoder_id: str | None, template: str | None, rows_sha256: str,
             index_type: str = "auto", dtype: str = "float32", progress: bool = False) -> tuple[list[Path], dict[str, Any]]:
        """Write the sets of ``encoder_id`` (entity vectors of ``template`` only) and the name index; returns
        the files and the manifest keys that describe them (each set with ``rows_sha256``, the identity of the
        entity table its rows belong to: see EntityStore.rows_sha256)."""
        files: list[Path] = []
        vectors: dict[str, Any] = {}
        saved = [vs for vs in self.sets.values() if encoder_id is not None and vs.encoder_id == encoder_id
                 and not (vs.kind == "entities" and vs.template != template)]
        for vector_set in saved:
            path = directory / f"vectors.{vector_set.kind}.npy"
            save_in_blocks(path, vector_set.matrix, dtype)
            files.append(path)
            vectors[vector_set.kind] = {"file": path.name, "rows": int(vector_set.matrix.shape[0]),
                                        "template": vector_set.template, "normalized": vector_set.normalized,
                                        "max_length": vector_set.max_length, "rows_sha256": rows_sha256}
        index_info = self._save_index(directory, encoder_id, "names" in vectors, index_type, progress, files)
        dims = {int(vs.matrix.shape[1]) for vs in self.sets.values() if vs.encoder_id == encoder_id}
        return files, {
            "encoder": encoder_id if vectors else None,
            "template": template if "entities" in vectors else None,
            "dim": dims.pop() if len(dims) == 1 else None,
            "dtype": dtype if vectors else None,
            "normalized": all(info["normalized"] for info in vectors.values()),
            "vectors": vectors,
            "index": index_info,
        }

    def _save_index(self, directory: Path, encoder_id: str | None, has_names: bool, index_type: str,
                    progress: bool, files: list[Path]) -> dict[str, Any] | None:
        index = next((ix for (kind, enc, _), ix in self.indexes.items() if kind == "names" and enc == encoder_id),
                     None)
        if index is None and has_names:
            index = self._build(load_array(directory / "vectors.names.npy"), index_type, progress)
        if index is None:
            return None
        written = index.save(directory / INDEX_FILE)
        files.extend(written)
        return {"kind": "names", "type": index.kind, "params": index.params,
                "file": INDEX_FILE if written else None, "ntotal": index.size}

    @staticmethod
    def files(manifest: dict[str, Any]) -> list[str]:
        """The files of a checked manifest that :meth:`open` reads."""
        names = [info["file"] for info in manifest.get("vectors", {}).values()]
        index = manifest.get("index")
        return names + (_index_files(index) if index and index["file"] else [])

    @staticmethod
    def check_manifest(path: Path, m: dict[str, Any]) -> None:
        """Refuse ``vectors``, ``encoder`` and ``index`` keys of the wrong shape or naming unlisted files."""
        files = m["files"]
        vectors = m.get("vectors", {})
        if not isinstance(vectors, dict):
            raise manifest_error(path, "vectors", "a mapping of kind to {file, rows, template}")
        for kind, info in vectors.items():
            if (kind not in KINDS or not isinstance(info, dict) or not _listed(info.get("file"), files)
                    or not is_count(info.get("rows")) or "template" not in info
                    or not isinstance(info["template"], (str, type(None)))):
                raise manifest_error(path, f"vectors.{kind}", f"{{file listed in 'files', rows, template}} for a kind in {KINDS}")
        if vectors and not isinstance(m.get("encoder"), str):
            raise manifest_error(path, "encoder", "the name of the encoder that made the vectors")
        if m.get("dim") is not None and not is_count(m["dim"]):
            raise manifest_error(path, "dim", "a non-negative integer or null")
        index = m.get("index")
        if index is not None and (
                not isinstance(index, dict) or index.get("type") not in INDEX_TYPES or "names" not in vectors
                or not is_count(index.get("ntotal")) or not isinstance(index.get("params", {}), dict)
                or "file" not in index or (index["file"] is None) != (index["type"] == "flat")
                or (index["file"] is not None and not all(_listed(f, files) for f in _index_files(index)))):
            raise manifest_error(path, "index", f"null or {{type in {INDEX_TYPES}, file listed in 'files' (null for "
                                                "flat; its refine and code order files too with refine sq8), ntotal, "
                                                "params}} over the 'names' vectors")
        params = index.get("params", {}) if index else {}
        ordered = params.get("refine") == SQ8 and m.get("format_version", 0) >= 5
        if params.get("codes_order") != ("lists" if ordered else None):
            raise manifest_error(path, "index.params.codes_order", "'lists' with refine sq8 from format 5 on, "
                                                                   "absent otherwise")

    @classmethod
    def open(cls, directory: Path, manifest: dict[str, Any]) -> VectorStore:
        """The vectors and index of a kb_dir whose manifest was checked: matrices memory-mapped, nothing re-embedded."""
        sets = {}
        for kind, info in manifest.get("vectors", {}).items():
            vector_set = VectorSet(kind, manifest["encoder"], info["template"],
                                   _read_matrix(directory / info["file"], info["rows"], manifest.get("dim")),
                                   info.get("max_length") if is_count(info.get("max_length")) else None)
            sets[vector_set.key] = vector_set
        store = cls(sets)
        if manifest.get("index"):
            store.refine = manifest["index"].get("params", {}).get("refine", "vectors")
            store.refine = store.refine if store.refine in REFINES else "vectors"  # a rebuild (compaction) keeps it
            names = next(vs for vs in sets.values() if vs.kind == "names")
            store.indexes[names.key] = _read_index(directory, manifest, names.matrix)
        return store


def _faiss_maps_codes() -> bool:
    import faiss

    return hasattr(faiss, "IO_FLAG_MMAP_IFC")


def _index_files(index: dict[str, Any]) -> list[str]:
    """The files of a manifest's ``index`` entry that has a file: the index, and its codes with refine sq8."""
    params = index.get("params") if isinstance(index.get("params"), dict) else {}
    if params.get("refine") != SQ8 or not isinstance(index["file"], str):
        return [index["file"]]
    path = Path(index["file"])
    return [index["file"], refine_path(path).name] + ([order_path(path).name] if lists_ordered(params) else [])


def _listed(name: Any, files: dict[str, Any]) -> bool:
    return isinstance(name, str) and name in files


def _read_matrix(path: Path, rows: int, dim: int | None) -> np.ndarray:
    matrix = read_file(path, load_array)
    if matrix.ndim != 2 or matrix.dtype.kind != "f" or matrix.shape[0] != rows or (dim and matrix.shape[1] != dim):
        raise KnowledgeBaseError(f"{path}: a {matrix.dtype} array of shape {matrix.shape} does not "
                                 f"match the manifest ({rows} rows of {dim} floats)")
    return matrix


def _read_index(directory: Path, manifest: dict[str, Any], vectors: np.ndarray) -> VectorIndex:
    info = manifest["index"]
    path = directory / info["file"] if info["file"] else None
    for name in _index_files(info) if path is not None else []:  # FAISS reads in C++: never hand it a file
        check_size(directory / name, manifest["files"][name]["bytes"])  # of the wrong size, whatever `verify` says
    index = read_file(path or directory, lambda _: VectorIndex.load(path, info["type"], info.get("params", {}), vectors))
    if index.size != info["ntotal"]:
        raise KnowledgeBaseError(f"{path or directory}: index holds {index.size} vectors, the manifest says {info['ntotal']}")
    if index.dim != vectors.shape[1]:
        raise corrupted(path, f"index of {index.dim}-d vectors, but the name vectors are {vectors.shape[1]}-d")
    codes = index.refine
    if codes is not None and (codes.ntotal != index.size or codes.d != index.dim
                              or codes.codes.size() != codes.ntotal * codes.code_size):
        raise corrupted(refine_path(path), f"{codes.ntotal} codes of {codes.d}-d vectors for an index of "
                        f"{index.size} {index.dim}-d vectors", path)
    if index.order is not None:  # every code's row must be a row: searches return them
        check_rows(order_path(path), index.order, index.size, len(vectors), path)
        release_pages(index.order)
    return index
