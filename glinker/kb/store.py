"""EntityStore: the knowledge base held column by column.

Entities live in a few arrays (ids, names, descriptions, types, popularity, extra metadata as JSON),
never as one Python object per entity. Names are the label followed by the aliases of each entity,
in ``names[name_start[row]:name_start[row + 1]]``. Re-loading an id with ``overwrite=True`` appends
the new row and retires the old one (``alive``), so indexes can be extended instead of rebuilt.

In a kb_dir the store is the ``entities.*`` files: one pair of ``.data``/``.offsets`` files per string
column and one ``.npy`` per number column (``name_start``, ``popularity``); retired rows are dropped
before a save, so every saved row is alive.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import KnowledgeBaseError, Reject
from ..templates import render_template
from ..types import Candidate
from .checks import check_offsets, read_file
from .columns import StringColumn, load_array, release_pages, string_hash
from .reader import EntityRow, EntitySource, OnError, RowError, iter_raw_rows, parse_row

STRING_COLUMNS = ("ids", "names", "descriptions", "types", "extra")
NUMBER_COLUMNS = ("name_start", "popularity")


@dataclass
class LoadReport:
    """What one ``load`` call did."""

    loaded: int = 0
    overwritten: int = 0
    skipped_existing: int = 0
    rejected: list[Reject] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "overwritten": self.overwritten,
            "skipped_existing": self.skipped_existing,
            "rejected": len(self.rejected),
        }


DECODED_ROWS = 100_000  # decoded rows kept for candidates (rows are append-only; a reset forgets them)


class EntityStore:
    """Columnar entity table with id lookup and a change counter for derived indexes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.ids = StringColumn.empty()
        self.names = StringColumn.empty()
        self.name_start = np.zeros(1, dtype=np.int64)
        self.descriptions = StringColumn.empty()
        self.types = StringColumn.empty()
        self.popularity = np.zeros(0, dtype=np.int64)
        self.extra = StringColumn.empty()
        self.alive = np.zeros(0, dtype=bool)
        self.version = getattr(self, "version", -1) + 1
        self._id_hash_sorted = np.zeros(0, dtype=np.uint64)
        self._id_rows_sorted = np.zeros(0, dtype=np.int64)
        self._entity_of_names = (self.name_start, np.zeros(0, dtype=np.int64))
        self.row_vectors: dict[str, tuple[np.ndarray, str | None]] = {}
        self._decoded: dict[int, tuple] = {}

    # ------------------------------------------------------------------ size and lookup

    @property
    def num_rows(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return int(self.alive.sum())

    def alive_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def row_of(self, entity_id: str) -> int | None:
        """Row of the live entity with this id, or None."""
        h = np.uint64(string_hash(entity_id))
        row = self._row_from(int(np.searchsorted(self._id_hash_sorted, h)), h, entity_id)
        return None if row < 0 else row

    def _row_from(self, pos: int, h: np.uint64, entity_id: str) -> int:
        """Row of the live entity ``entity_id`` among the ids of hash ``h``, which start at ``pos`` of the
        sorted hashes; -1 if none."""
        hashes, rows = self._id_hash_sorted, self._id_rows_sorted
        while pos < len(hashes) and hashes[pos] == h:
            row = int(rows[pos])
            if self.alive[row] and self.ids[row] == entity_id:
                return row
            pos += 1
        return -1

    def rows_of(self, ids: list[str]) -> np.ndarray:
        """Rows of the live entities with these ids (-1 where absent), looked up in one vectorised pass."""
        out = np.full(len(ids), -1, dtype=np.int64)
        if not len(self._id_hash_sorted) or not ids:
            return out
        hashes = StringColumn.from_strings(ids).hashes()
        pos = np.clip(np.searchsorted(self._id_hash_sorted, hashes), 0, len(self._id_hash_sorted) - 1)
        for i in np.flatnonzero(self._id_hash_sorted[pos] == hashes):
            out[i] = self._row_from(int(pos[i]), hashes[i], ids[i])
        return out

    def __contains__(self, entity_id: str) -> bool:
        return self.row_of(entity_id) is not None

    # ------------------------------------------------------------------ row accessors

    def label(self, row: int) -> str:
        return self.names[int(self.name_start[row])]

    def aliases(self, row: int) -> list[str]:
        return self.names.take(range(int(self.name_start[row]) + 1, int(self.name_start[row + 1])))

    def metadata(self, row: int) -> dict[str, Any]:
        raw = self.extra[row]
        return orjson.loads(raw) if raw else {}

    def fields(self, row: int) -> dict[str, Any]:
        """The entity as a row dict (what a template may reference)."""
        return {
            **self.metadata(row),
            "entity_id": self.ids[row],
            "label": self.label(row),
            "aliases": self.aliases(row),
            "description": self.descriptions[row],
            "entity_type": self.types[row],
            "popularity": int(self.popularity[row]),
        }

    def candidate(self, row: int, score: float = 0.0, source: str = "", matched_name: str = "") -> Candidate:
        """Rows are decoded once (up to ``DECODED_ROWS`` kept): the candidates of one entity share its
        strings, aliases list and metadata dict, so results hold each KB row once. Treat them as read-only."""
        label, aliases, description, entity_type, metadata = self._decoded_row(row)
        return Candidate(
            entity_id=self.ids[row],
            label=label,
            aliases=aliases,
            description=description,
            entity_type=entity_type,
            popularity=int(self.popularity[row]),
            metadata=metadata,
            source=source,
            score=float(score),
            matched_name=matched_name,
            kb_row=row,
        )

    def _decoded_row(self, row: int) -> tuple:
        decoded = self._decoded.get(row)
        if decoded is None:
            if len(self._decoded) >= DECODED_ROWS:
                self._decoded.clear()
            decoded = (self.label(row), self.aliases(row), self.descriptions[row], self.types[row], self.metadata(row))
            self._decoded[row] = decoded
        return decoded

    def render(self, rows: Iterable[int], template: str) -> list[str]:
        """Entity texts made with a template such as ``"{label}: {description}"``."""
        return [render_template(template, self.fields(int(r))) for r in rows]

    def name_entity_rows(self) -> np.ndarray:
        """The entity row of every name (computed once per ``name_start``: every faiss batch asks; shared,
        so read-only)."""
        start, rows = self._entity_of_names
        if start is not self.name_start:
            rows = np.repeat(np.arange(self.num_rows, dtype=np.int64), np.diff(self.name_start))
            rows.flags.writeable = False
            self._entity_of_names = (self.name_start, rows)
        return rows

    def label_name_rows(self) -> np.ndarray:
        """The name row of every entity's label (its first name)."""
        return self.name_start[:-1]

    # ------------------------------------------------------------------ loading

    def load(
        self,
        source: EntitySource,
        *,
        overwrite: bool = False,
        on_error: OnError = "raise",
        rejects_path: str | Path | None = None,
    ) -> LoadReport:
        """Add entities from a JSONL(.gz) path, a list of dicts or a dict of dicts.

        ``overwrite=False`` keeps an already loaded id (counted in ``skipped_existing``);
        ``overwrite=True`` replaces it. A bad row raises :class:`KnowledgeBaseError` naming
        the file, line and field, or with ``on_error="skip"`` becomes a reject and loading goes on.
        Rows are turned into columns every ``CHUNK_ROWS`` rows, and the store changes only when the
        whole source was read, so a failed load leaves it as it was.
        """
        if on_error not in ("raise", "skip"):
            raise KnowledgeBaseError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        report = LoadReport()
        earlier = _EarlierRows()
        batch: list[EntityRow] = []
        chunks: list[_Chunk | None] = []
        retire: list[int] = []
        for source_name, line, raw in iter_raw_rows(source):
            try:
                row = earlier.check(parse_row(raw), line)
            except RowError as exc:
                reject = Reject(line, exc.reason, source=source_name, field=exc.field)
                if on_error == "raise":
                    raise KnowledgeBaseError(reject.message()) from None
                report.rejected.append(reject)
                continue
            batch.append(row)
            if len(batch) == CHUNK_ROWS:
                chunks.append(self._chunk(batch, overwrite, retire, report))
                batch = []
        if batch:
            chunks.append(self._chunk(batch, overwrite, retire, report))
        kept = [c for c in chunks if c is not None]
        report.loaded = sum(c.size for c in kept) - report.overwritten
        if rejects_path is not None:
            with open(rejects_path, "ab") as handle:
                handle.writelines(reject.to_json() for reject in report.rejected)
        if kept:
            with self.lock:
                self._attach(kept, retire)
        return report

    def _chunk(self, batch: list[EntityRow], overwrite: bool, retire: list[int], report: LoadReport) -> _Chunk | None:
        """Columns of the rows to add; ids already loaded are skipped or, with ``overwrite``, retired."""
        existing = self.rows_of([r.entity_id for r in batch])
        hits = np.flatnonzero(existing >= 0)
        if len(hits):
            if overwrite:
                retire.extend(existing[hits].tolist())
                report.overwritten += len(hits)
            else:
                report.skipped_existing += len(hits)
                batch = [r for r, e in zip(batch, existing, strict=True) if e < 0]
        return _Chunk.of(batch) if batch else None

    def _attach(self, chunks: list[_Chunk], retire: list[int]) -> None:
        first_row = self.num_rows
        self._add_row_vectors(chunks, first_row)
        for name in STRING_COLUMNS:
            setattr(self, name, StringColumn.concat_all([getattr(self, name)] + [getattr(c, name) for c in chunks]))
        name_counts = np.concatenate([c.name_counts for c in chunks])
        self.name_start = np.concatenate([self.name_start, self.name_start[-1] + np.cumsum(name_counts)])
        self.popularity = np.concatenate([self.popularity] + [c.popularity for c in chunks])
        self.alive = np.concatenate([self.alive, np.ones(len(name_counts), dtype=bool)])
        self.alive[retire] = False
        self._reindex_ids()
        self.version += 1

    def _add_row_vectors(self, chunks: list[_Chunk], first_row: int) -> None:
        """Keep vectors that came inside the rows (glinker 0.1.x ``embedding`` field)."""
        given = [c for c in chunks if c.vectors is not None]
        if not given:
            return
        dim = given[0].vectors.shape[1]
        old, model_id = self.row_vectors.get("entities", (np.full((first_row, dim), np.nan, np.float32), None))
        if old.shape[1] != dim:
            raise KnowledgeBaseError(f"row embeddings have {dim} dimensions, loaded ones {old.shape[1]}")
        model_ids = set().union(*(c.model_ids for c in given)) | ({model_id} - {None})
        if len(model_ids) > 1:
            raise KnowledgeBaseError(f"row embeddings come from several models: {sorted(map(str, model_ids))}")
        parts = [old] + [c.vectors if c.vectors is not None else np.full((c.size, dim), np.nan, np.float32)
                         for c in chunks]
        self.row_vectors["entities"] = (np.concatenate(parts), next(iter(model_ids)))

    def _reindex_ids(self) -> None:
        hashes = self.ids.hashes()
        order = np.argsort(hashes, kind="stable")
        self._id_hash_sorted = hashes[order]
        self._id_rows_sorted = order.astype(np.int64)

    def clear(self) -> None:
        with self.lock:
            self._reset()

    def retire(self, ids: list[str]) -> np.ndarray:
        """Retire the live entities with these ids; returns their rows. Nothing changes when an id is
        unknown: the error names the first few."""
        ids = list(dict.fromkeys(ids))
        rows = self.rows_of(ids)
        unknown = [i for i, row in zip(ids, rows, strict=True) if row < 0]
        if unknown:
            raise KnowledgeBaseError(f"{len(unknown)} unknown id(s) to delete: {', '.join(map(repr, unknown[:5]))}"
                                     f"{' ...' if len(unknown) > 5 else ''}; nothing was deleted")
        with self.lock:
            self.alive[rows] = False
            self.version += 1
        return rows

    def without_retired(self) -> tuple[EntityStore, np.ndarray, np.ndarray]:
        """A new store of the live rows only, and the entity rows and name rows it kept."""
        keep = np.flatnonzero(self.alive)
        name_keep = (np.concatenate([np.arange(self.name_start[r], self.name_start[r + 1]) for r in keep])
                     if len(keep) else np.zeros(0, np.int64))
        fresh = EntityStore()
        for name in STRING_COLUMNS:
            setattr(fresh, name, getattr(self, name).subset(name_keep if name == "names" else keep))
        fresh.name_start = np.concatenate([[0], np.cumsum(np.diff(self.name_start)[keep])]).astype(np.int64)
        fresh.popularity = np.asarray(self.popularity)[keep]
        fresh.alive = np.ones(len(keep), dtype=bool)
        fresh._reindex_ids()
        return fresh, keep, name_keep

    # ------------------------------------------------------------------ kb_dir files

    @staticmethod
    def files() -> list[str]:
        """The files :meth:`save` writes."""
        strings = [file for name in STRING_COLUMNS for file in StringColumn.files(f"entities.{name}")]
        return strings + [f"entities.{name}.npy" for name in NUMBER_COLUMNS]

    def save(self, directory: Path) -> list[Path]:
        """Write the columns (of a store without retired rows: ``alive`` is not saved)."""
        if not self.alive.all():
            raise ValueError("save a store without retired rows (EntityStore.without_retired)")
        paths = [path for name in STRING_COLUMNS for path in getattr(self, name).save(directory, f"entities.{name}")]
        for name in NUMBER_COLUMNS:
            paths.append(directory / f"entities.{name}.npy")
            np.save(paths[-1], np.asarray(getattr(self, name)))
        return paths

    def rows_sha256(self) -> str:
        """SHA-256 of what the other parts of a kb_dir (name index, vectors) know the rows by: the ids, the
        names and which names are whose."""
        digest = hashlib.sha256()
        for column in (self.ids, self.names):
            digest.update(np.ascontiguousarray(column.offsets, dtype="<i8"))
            digest.update(np.ascontiguousarray(column.data))
        digest.update(np.ascontiguousarray(self.name_start, dtype="<i8"))
        return digest.hexdigest()

    @classmethod
    def open(cls, directory: Path, count: int, names: int, utf8: bool) -> EntityStore:
        """The store saved in ``directory``, strings memory-mapped, checked against the manifest's ``count``
        of entities and of ``names``; ``utf8``: decode the strings once (their checksums were not checked)."""
        store = cls()
        for name in STRING_COLUMNS:
            setattr(store, name, StringColumn.open(directory, f"entities.{name}", utf8))
        for name in NUMBER_COLUMNS:  # small per-row arrays, read into memory: they are indexed one scalar at a time
            setattr(store, name, read_file(directory / f"entities.{name}.npy", load_array, False))
        store.alive = np.ones(len(store.ids), dtype=bool)
        for name, key, expected in (("ids", "count", count), ("names", "names", names)):
            if len(getattr(store, name)) != expected:
                raise KnowledgeBaseError(f"{directory}/entities.{name}.offsets.npy: {len(getattr(store, name))} "
                                         f"strings, the manifest says {key} = {expected}")
        if len(store.popularity) != len(store.ids) or len(store.name_start) != len(store.ids) + 1:
            raise KnowledgeBaseError(f"{directory}: entities.popularity.npy or entities.name_start.npy has the wrong length")
        check_offsets(directory / "entities.name_start.npy", store.name_start, len(store.names),
                      directory / "entities.names.offsets.npy")
        store._reindex_ids()
        release_pages(store.ids.data)  # the id index hashed every id (each column released its own check's pass)
        return store


CHUNK_ROWS = 50_000


class _EarlierRows:
    """What a row must agree on with the rows read before it in one load: a new id, and embeddings of
    one size and one model."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.vector_dim: int | None = None
        self.vector_model: str | None = None

    def check(self, row: EntityRow, line: int) -> EntityRow:
        if row.entity_id in self.lines:
            raise RowError("entity_id", f"duplicate id {row.entity_id!r} (first at line {self.lines[row.entity_id]})")
        if row.embedding is not None:
            if self.vector_dim is None:
                self.vector_dim, self.vector_model = len(row.embedding), row.embedding_model_id
            if len(row.embedding) != self.vector_dim:
                raise RowError("embedding", f"has {len(row.embedding)} dimensions, earlier rows {self.vector_dim}")
            if row.embedding_model_id != self.vector_model:
                raise RowError("embedding_model_id", f"{row.embedding_model_id!r}, earlier rows with "
                               f"embeddings {self.vector_model!r}: one KB holds vectors of one model")
        self.lines[row.entity_id] = line
        return row


@dataclass
class _Chunk:
    """Up to CHUNK_ROWS parsed rows, as columns."""

    size: int
    ids: StringColumn
    names: StringColumn
    name_counts: np.ndarray
    descriptions: StringColumn
    types: StringColumn
    extra: StringColumn
    popularity: np.ndarray
    vectors: np.ndarray | None
    model_ids: set

    @classmethod
    def of(cls, rows: list[EntityRow]) -> _Chunk:
        vectors = None
        with_vectors = [i for i, r in enumerate(rows) if r.embedding is not None]
        if with_vectors:
            vectors = np.full((len(rows), len(rows[with_vectors[0]].embedding)), np.nan, dtype=np.float32)
            for i in with_vectors:
                vectors[i] = rows[i].embedding
        return cls(
            size=len(rows),
            ids=StringColumn.from_strings(r.entity_id for r in rows),
            names=StringColumn.from_strings(name for r in rows for name in (r.label, *r.aliases)),
            name_counts=np.fromiter((1 + len(r.aliases) for r in rows), dtype=np.int64, count=len(rows)),
            descriptions=StringColumn.from_strings(r.description for r in rows),
            types=StringColumn.from_strings(r.entity_type for r in rows),
            extra=StringColumn.from_strings(orjson.dumps(r.metadata).decode() if r.metadata else "" for r in rows),
            popularity=np.fromiter((r.popularity for r in rows), dtype=np.int64, count=len(rows)),
            vectors=vectors,
            model_ids={rows[i].embedding_model_id for i in with_vectors},
        )
