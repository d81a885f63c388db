"""A knowledge base on disk (a "kb_dir"): columns, name index, vectors and FAISS index, plus a manifest.

Layout::

    kb_dir/manifest.json            format version, encoder, template, dim, dtype, counts, index, checksums
    kb_dir/entities.*.npy           the entity table (ids, names, descriptions, types, popularity, extra)
    kb_dir/names.*.npy              the name index (exact + n-gram)
    kb_dir/vectors.names.npy        one unit vector per name (label and aliases), memory-mapped on load
    kb_dir/vectors.entities.npy     one unit vector per entity, made with the template
    kb_dir/index.names.faiss        FAISS index over the name vectors (hnsw/ivf; flat search needs none)

A build writes into a temporary sibling directory and renames it into place at the end, so an
interrupted build leaves the previous kb_dir untouched. Loading verifies the manifest's checksums
(``verify="full"``) or sizes (``verify="size"``) before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from .base import KINDS
from .checks import check_column, check_manifest, check_name_index, check_offsets, corrupted
from .columns import StringColumn, load_array
from .names import ARRAYS as NAME_ARRAYS
from .names import NameIndex
from .store import EntityStore
from .vector_index import VectorIndex

FORMAT_VERSION = 1
STRING_COLUMNS = ("ids", "names", "descriptions", "types", "extra")
ARRAY_COLUMNS = ("name_start", "popularity")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def compacted(kb) -> None:
    """Drop retired rows (overwritten entities) from the store and every vector set, in place."""
    store = kb.store
    if store.alive.all():
        return
    keep = np.flatnonzero(store.alive)
    name_keep = np.concatenate([np.arange(store.name_start[r], store.name_start[r + 1]) for r in keep]) if len(keep) else np.zeros(0, np.int64)
    fresh = EntityStore()
    fresh.ids = store.ids.subset(keep)
    fresh.names = store.names.subset(name_keep)
    fresh.name_start = np.concatenate([[0], np.cumsum(np.diff(store.name_start)[keep])]).astype(np.int64)
    fresh.descriptions = store.descriptions.subset(keep)
    fresh.types = store.types.subset(keep)
    fresh.extra = store.extra.subset(keep)
    fresh.popularity = np.asarray(store.popularity)[keep]
    fresh.alive = np.ones(len(keep), dtype=bool)
    fresh._reindex_ids()
    for vs in kb.vector_sets.values():
        rows = name_keep if vs.kind == "names" else keep
        vs.matrix = np.asarray(vs.matrix)[rows]
    kb.faiss_indexes.clear()
    kb.store = fresh
    kb._names = None


def save_kb(kb, out_dir: str | Path, encoder_id: str | None, template: str | None, index_type: str = "auto",
            dtype: str = "float32", build_seconds: float | None = None, progress: bool = False) -> dict[str, Any]:
    """Write ``kb`` (its store, name index, the vector sets of ``encoder_id`` and their FAISS index)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        manifest = _write_contents(kb, tmp, encoder_id, template, index_type, dtype, build_seconds, progress)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _write_contents(kb, tmp: Path, encoder_id, template, index_type, dtype, build_seconds, progress) -> dict[str, Any]:
    compacted(kb)
    store = kb.store
    files: list[Path] = []
    for name in STRING_COLUMNS:
        files += getattr(store, name).save(tmp, f"entities.{name}")
    for name in ARRAY_COLUMNS:
        path = tmp / f"entities.{name}.npy"
        np.save(path, np.asarray(getattr(store, name)))
        files.append(path)
    files += kb.name_index().save(tmp)
    vectors: dict[str, Any] = {}
    index_info = None
    if encoder_id is not None:
        for (kind, enc, tmpl), vs in kb.vector_sets.items():
            if enc != encoder_id or (kind == "entities" and tmpl != template):
                continue
            path = tmp / f"vectors.{kind}.npy"
            np.save(path, np.asarray(vs.matrix).astype(dtype, copy=False))
            files.append(path)
            vectors[kind] = {"file": path.name, "rows": int(vs.matrix.shape[0]), "template": tmpl}
        names_index = next((ix for (kind, enc, _), ix in kb.faiss_indexes.items()
                            if kind == "names" and enc == encoder_id), None)
        if names_index is None and "names" in vectors:
            names_index = VectorIndex.build(load_array(tmp / "vectors.names.npy"), index_type, progress=progress)
        if names_index is not None:
            path = tmp / "index.names.faiss"
            written = names_index.save(path)
            if written:
                files.append(path)
            index_info = {"kind": "names", "type": names_index.kind, "params": names_index.params,
                          "file": path.name if written else None, "ntotal": names_index.size}
    dims = {int(kb.vector_sets[k].matrix.shape[1]) for k in kb.vector_sets if k[1] == encoder_id}
    from .. import __version__

    manifest = {
        "format_version": FORMAT_VERSION,
        "glinker_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": build_seconds,
        "count": len(store),
        "names": len(store.names),
        "encoder": encoder_id if vectors else None,
        "template": template if "entities" in vectors else None,
        "dim": dims.pop() if len(dims) == 1 else None,
        "dtype": dtype if vectors else None,
        "normalized": True,
        "vectors": vectors,
        "index": index_info,
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        if not (out_dir / "manifest.json").exists():
            raise KnowledgeBaseError(f"{out_dir} exists and is not a kb_dir (no manifest.json); refusing to replace it")
        old = out_dir.parent / f".{out_dir.name}.old-{time.time_ns()}"
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def read_manifest(kb_dir: Path) -> dict[str, Any]:
    path = kb_dir / "manifest.json"
    if not path.exists():
        raise KnowledgeBaseError(f"{kb_dir}: not a kb_dir (no manifest.json); build one with `glinker kb build`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: unreadable manifest: {exc}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise KnowledgeBaseError(f"{path}: manifest has no integer format_version")
    if version > FORMAT_VERSION:
        raise KnowledgeBaseError(
            f"{kb_dir}: written in kb format version {version}, but this glinker reads versions up to "
            f"{FORMAT_VERSION}; upgrade glinker or rebuild the kb_dir"
        )
    check_manifest(path, manifest, KINDS)
    return manifest


def _data_files(manifest: dict[str, Any]) -> list[str]:
    """Every file ``load_kb`` reads."""
    names = [f"entities.{c}.{part}.npy" for c in STRING_COLUMNS for part in ("data", "offsets")]
    names += [f"entities.{a}.npy" for a in ARRAY_COLUMNS] + [f"names.{a}.npy" for a in NAME_ARRAYS]
    names += ["names.keys.data.npy", "names.keys.offsets.npy"]
    names += [info["file"] for info in manifest.get("vectors", {}).values()]
    index = manifest.get("index")
    return names + ([index["file"]] if index and index["file"] else [])


def _check_size(path: Path, expected: int) -> None:
    if not path.exists():
        raise KnowledgeBaseError(f"{path}: missing (listed in the manifest)")
    if path.stat().st_size != expected:
        raise KnowledgeBaseError(f"{path}: {path.stat().st_size} bytes, the manifest says {expected} (truncated or replaced)")


def verify_files(kb_dir: Path, manifest: dict[str, Any], verify: str) -> None:
    if verify not in ("full", "size", "none"):
        raise KnowledgeBaseError(f"verify must be 'full', 'size' or 'none', got {verify!r}")
    if verify == "none":
        return
    unlisted = [name for name in _data_files(manifest) if name not in manifest["files"]]
    if unlisted:
        raise KnowledgeBaseError(f"{kb_dir / unlisted[0]}: not listed in the manifest, so it cannot be verified")
    for name, info in manifest["files"].items():
        path = kb_dir / name
        _check_size(path, info["bytes"])
        if verify == "full" and sha256_file(path) != info["sha256"]:
            raise KnowledgeBaseError(f"{path}: checksum mismatch (the file is corrupted or was changed after the build)")


def _read(path: Path, reader, *args):
    """Run ``reader(path, *args)``; any failure becomes an error naming the file."""
    try:
        return reader(path, *args)
    except Exception as exc:  # noqa: BLE001 - numpy and FAISS raise many types on a bad file; all mean "bad file"
        raise KnowledgeBaseError(f"{path}: cannot load: {type(exc).__name__}: {exc}") from exc


def load_kb(kb, kb_dir: str | Path, verify: str = "full") -> dict[str, Any]:
    """Fill ``kb`` from a kb_dir: arrays memory-mapped, nothing re-embedded."""
    from .base import VectorSet

    kb_dir = Path(kb_dir)
    manifest = read_manifest(kb_dir)
    verify_files(kb_dir, manifest, verify)
    store = EntityStore()
    for name in STRING_COLUMNS:
        data = _read(kb_dir / f"entities.{name}.data.npy", load_array)
        # small per-row arrays (offsets, popularity) are read into RAM: they are indexed one scalar at a time
        offsets = _read(kb_dir / f"entities.{name}.offsets.npy", load_array, False)
        setattr(store, name, StringColumn(data, offsets))
        check_column(kb_dir, f"entities.{name}", getattr(store, name), utf8=verify != "full")
    for name in ARRAY_COLUMNS:
        setattr(store, name, _read(kb_dir / f"entities.{name}.npy", load_array, False))
    store.alive = np.ones(len(store.ids), dtype=bool)
    for name, key in (("ids", "count"), ("names", "names")):
        if len(getattr(store, name)) != manifest[key]:
            raise KnowledgeBaseError(f"{kb_dir}/entities.{name}.offsets.npy: {len(getattr(store, name))} strings, "
                                     f"the manifest says {key} = {manifest[key]}")
    if len(store.popularity) != len(store.ids) or len(store.name_start) != len(store.ids) + 1:
        raise KnowledgeBaseError(f"{kb_dir}: entities.popularity.npy or entities.name_start.npy has the wrong length")
    check_offsets(kb_dir / "entities.name_start.npy", store.name_start, len(store.names),
                  kb_dir / "entities.names.offsets.npy")
    store._reindex_ids()
    for name in [*NAME_ARRAYS, "keys.data", "keys.offsets"]:  # each file named in its own error
        _read(kb_dir / f"names.{name}.npy", load_array)
    names = _read(kb_dir, NameIndex.load, 3)
    check_name_index(kb_dir, names.a, len(store.names), len(store.ids), deep=verify != "full")
    check_column(kb_dir, "names.keys", names.keys, utf8=verify != "full")
    vector_sets = {}
    for kind, info in manifest.get("vectors", {}).items():
        matrix = _read(kb_dir / info["file"], load_array)
        if (matrix.ndim != 2 or matrix.dtype.kind != "f" or matrix.shape[0] != info["rows"]
                or (manifest.get("dim") and matrix.shape[1] != manifest["dim"])):
            raise KnowledgeBaseError(f"{kb_dir / info['file']}: a {matrix.dtype} array of shape {matrix.shape} does not "
                                     f"match the manifest ({info['rows']} rows of {manifest.get('dim')} floats)")
        vector_sets[(kind, manifest["encoder"], info["template"])] = VectorSet(kind, manifest["encoder"], info["template"], matrix)
    indexes = {}
    if manifest.get("index"):
        info = manifest["index"]
        key = ("names", manifest["encoder"], manifest["vectors"]["names"]["template"])
        path = kb_dir / info["file"] if info["file"] else None
        if path is not None:  # FAISS reads in C++: never hand it a file of the wrong size, whatever `verify` says
            _check_size(path, manifest["files"][info["file"]]["bytes"])
        index = _read(path or kb_dir, lambda p: VectorIndex.load(path, info["type"], info.get("params", {}),
                                                                 vector_sets[key].matrix))
        if index.size != info["ntotal"]:
            raise KnowledgeBaseError(f"{path or kb_dir}: index holds {index.size} vectors, the manifest says {info['ntotal']}")
        if index.dim != vector_sets[key].matrix.shape[1]:
            raise corrupted(path, f"index of {index.dim}-d vectors, but the name vectors are "
                                  f"{vector_sets[key].matrix.shape[1]}-d")
        indexes[key] = index
    with kb.lock:
        kb.store = store
        kb._names = (store.version, names)
        kb.vector_sets = vector_sets
        kb.faiss_indexes = indexes
        kb.manifest = manifest
        kb.path = kb_dir
    return manifest
