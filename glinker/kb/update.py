"""Keeping a kb_dir current: ``glinker kb update``, ``kb compact`` and ``kb info``, and the executor's ``save_kb``.

An update opens the kb_dir, re-loads the upserted rows with ``overwrite`` (a changed entity retires its
old row and gets a new one), retires the deleted ids, and writes the result as the next generation
(storage.py: a temporary sibling swapped in atomically, under the kb_dir's lock). Only texts that are
new are embedded: a row whose name or template text equals the text of the row it replaced keeps that
row's vector (KnowledgeBase._embed). Retired rows are dropped before the write, so the name index,
gazetteer and vector index of the new generation are those a build from the final entities would
make, and an updated kb_dir opens with any glinker that reads its format.

Bad input changes nothing: an unknown id to delete, a bad row (without ``rejects_path``) or an
encoder other than the kb_dir's raises :class:`KnowledgeBaseError` before anything is written.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from ..locks import exclusive
from .base import KnowledgeBase
from .reader import EntitySource, OnError
from .storage import manifest_sha256, read_manifest, remove_stale_builds
from .store import LoadReport
from .vectors import KINDS

UPDATABLE_KINDS = ("names", "entities")  # the vectors `kb build` makes; GLiNER label vectors need a rebuild


def update_kb_dir(kb_dir: str | Path, upsert: EntitySource | None = None,
                  delete: str | Path | Iterable[str] | None = None, encoder: Any = None, on_error: OnError = "raise",
                  rejects_path: str | Path | None = None, verify: str = "full", batch_size: int = 64,
                  device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Upsert entity rows (new ids are added, known ids replaced), then delete ids (a file of one id per
    line, or a list), and write ``kb_dir``'s next generation; returns its manifest. ``encoder``: an
    encoder object for new texts (default: the kb_dir's, loaded only if a text needs embedding)."""
    kb_dir = Path(kb_dir)
    with _locked(kb_dir, "glinker kb update"):
        kb = KnowledgeBase.open(kb_dir, verify=verify)
        ids = read_ids(delete) if delete is not None else []
        report = LoadReport()
        if upsert is not None:
            report = kb.load(upsert, overwrite=True, on_error=on_error, rejects_path=rejects_path)
        _check_row_vectors(kb)
        kb.remove(ids)
        changes = {"added": report.loaded, "replaced": report.overwritten, "deleted": len(ids),
                   "rejected": len(report.rejected)}
        return _write_generation(kb, kb_dir, encoder, changes, batch_size, device, progress)


def compact_kb_dir(kb_dir: str | Path, verify: str = "full", progress: bool = False) -> dict[str, Any]:
    """Rewrite ``kb_dir`` as its next generation from its live rows, the vector index built afresh."""
    kb_dir = Path(kb_dir)
    with _locked(kb_dir, "glinker kb compact"):
        kb = KnowledgeBase.open(kb_dir, verify=verify)
        kb.vector_store.indexes.clear()  # built again from the vectors when written (IVF: trained again)
        return _write_generation(kb, kb_dir, None, {"compacted": True}, 64, "cpu", progress)


def save_kb(kb: KnowledgeBase, encoder: Any = None, batch_size: int = 64, device: str = "cpu") -> dict[str, Any]:
    """Write an in-process KB opened from a kb_dir (and changed since: loads, removals) back to that kb_dir
    as its next generation. Refused if the kb_dir got another generation since it was opened."""
    if kb.path is None or kb.manifest is None:
        raise KnowledgeBaseError("this KB was not opened from a kb_dir: write one with KnowledgeBase.save_dir "
                                 "or `glinker kb build`, then load it")
    with _locked(kb.path, "glinker save_kb"):
        current = manifest_sha256(kb.path)
        if current != kb.manifest_sha256:
            raise KnowledgeBaseError(f"{kb.path} changed since this KB was opened (its manifest is another "
                                     "generation's); load it again and re-apply the changes")
        manifest = _write_generation(kb, kb.path, encoder, {"saved_in_process": True}, batch_size,
                                     device, False)
        with kb.lock:
            kb.manifest, kb.manifest_sha256 = manifest, manifest_sha256(kb.path)
        return manifest


def kb_info(kb_dir: str | Path) -> dict[str, Any]:
    """What ``glinker kb info`` prints: generation, counts, encoder, template, index, size on disk."""
    kb_dir = Path(kb_dir)
    m = read_manifest(kb_dir)
    index = m.get("index")
    return {
        "kb_dir": str(kb_dir), "generation": m.get("generation", 0), "parent_sha256": m.get("parent_sha256"),
        "live": m["count"], "dead": 0, "names": m["names"], "encoder": m.get("encoder"),
        "template": m.get("template"), "dim": m.get("dim"), "dtype": m.get("dtype"),
        "vectors": {kind: info.get("rows") for kind, info in m.get("vectors", {}).items()},
        "index": index and {k: index.get(k) for k in ("type", "ntotal", "params")},
        "last_change": m.get("update"), "created_at": m.get("created_at"), "format_version": m["format_version"],
        "bytes": sum(p.stat().st_size for p in kb_dir.iterdir() if p.is_file()),
    }


def read_ids(source: str | Path | Iterable[str]) -> list[str]:
    """Entity ids from a text file (``.gz`` too; one id per line, blank lines skipped) or an iterable."""
    if not isinstance(source, (str, Path)):
        ids = [str(i) for i in source]
    else:
        opener = gzip.open if str(source).endswith(".gz") else open
        with opener(source, "rt", encoding="utf-8") as handle:
            ids = [line.strip() for line in handle]
    return [i for i in ids if i]


# ------------------------------------------------------------------ writing a generation


@contextmanager
def _locked(kb_dir: Path, what: str) -> Iterator[None]:
    """Hold ``kb_dir``'s lock, after removing what killed builds and updates of it left behind."""
    with exclusive(kb_dir, what=what):
        remove_stale_builds(kb_dir)
        yield


def _write_generation(kb: KnowledgeBase, kb_dir: Path, encoder: Any, changes: dict[str, Any],
                      batch_size: int, device: str, progress: bool) -> dict[str, Any]:
    """Embed what is new, then write ``kb`` to ``kb_dir`` as the generation after the one it was opened as."""
    parent = kb.manifest
    embedder = _Embedder.for_kb_dir(parent, kb_dir, encoder, device)
    embedded = {}
    for kind, info in parent.get("vectors", {}).items():
        before = embedder.texts
        kb.vectors(embedder, kind, info["template"], batch_size=batch_size, progress=progress)
        embedded[kind] = embedder.texts - before
    index = parent.get("index")
    extra = {"generation": parent.get("generation", 0) + 1, "parent_sha256": kb.manifest_sha256,
             "update": {**changes, "embedded": embedded, "embed_seconds": round(embedder.seconds, 3),
                        "dead_dropped": int((~kb.store.alive).sum())}}
    return kb.save_dir(kb_dir, parent.get("encoder"), parent.get("template"),
                       index_type=index["type"] if index else "auto", dtype=parent.get("dtype") or "float32",
                       build_seconds=parent.get("build_seconds"), progress=progress, extra=extra)


def _check_row_vectors(kb: KnowledgeBase) -> None:
    """Vectors given inside upserted rows (``embedding``) must come from the kb_dir's encoder."""
    given = kb.store.row_vectors.get("entities")
    encoder = kb.manifest.get("encoder")
    if given is None or encoder is None:
        return
    matrix, model_id = given
    if model_id != encoder or matrix.shape[1] != kb.manifest.get("dim"):
        raise KnowledgeBaseError(f"{kb.path}: the upserted rows carry {matrix.shape[1]}-d embeddings of "
                                 f"{model_id!r}, but the kb_dir holds {kb.manifest.get('dim')}-d vectors of "
                                 f"{encoder!r}; drop the embeddings or rebuild with `glinker kb build`")


class _Embedder:
    """The kb_dir's encoder as KnowledgeBase.vectors sees it: its id, size and token limit from the manifest,
    the model loaded at the first text to embed, the texts embedded counted."""

    def __init__(self, model_id: str, dim: int, max_length: int | None, load):
        self.model_id, self.dim, self.max_length = model_id, dim, max_length
        self._load, self._model, self.texts, self.seconds = load, None, 0, 0.0

    @classmethod
    def for_kb_dir(cls, manifest: dict[str, Any], kb_dir: Path, encoder: Any, device: str) -> _Embedder:
        kinds = manifest.get("vectors", {})
        odd = [kind for kind in kinds if kind not in UPDATABLE_KINDS]
        if odd:
            raise KnowledgeBaseError(f"{kb_dir}: holds {', '.join(odd)} vectors (of {KINDS}, only "
                                     f"{', '.join(UPDATABLE_KINDS)} can be updated in place); rebuild it")
        model_id = manifest.get("encoder")
        if encoder is not None and model_id is not None and encoder.model_id != model_id:
            raise KnowledgeBaseError(f"{kb_dir}: its vectors were made with encoder {model_id!r}, the update "
                                     f"was given {encoder.model_id!r}; one kb_dir holds vectors of one encoder")
        max_length = next((info.get("max_length") for info in kinds.values()), None)
        if encoder is not None:
            return cls(encoder.model_id, encoder.dim, getattr(encoder, "max_length", None), lambda: encoder)

        def load():
            from ..models.encoder import get_encoder_of_id

            return get_encoder_of_id(model_id, device=device, max_length=max_length or 128)

        return cls(model_id, manifest.get("dim") or 0, max_length, load)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False, desc: str = "") -> np.ndarray:
        if self._model is None:
            self._model = self._load()
        started = time.perf_counter()
        self.texts += len(texts)
        vectors = self._model.encode(texts, batch_size=batch_size, progress=progress, desc=desc)
        self.seconds += time.perf_counter() - started
        return vectors
