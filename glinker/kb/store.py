"""EntityStore: the knowledge base held column by column.

Entities live in a few arrays (ids, names, descriptions, types, popularity, extra metadata as JSON),
never as one Python object per entity. Names are the label followed by the aliases of each entity,
in ``names[name_start[row]:name_start[row + 1]]``. Re-loading an id with ``overwrite=True`` appends
the new row and retires the old one (``alive``), so indexes can be extended instead of rebuilt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import KnowledgeBaseError
from ..templates import render_template
from ..types import Candidate
from .columns import StringColumn, string_hash
from .reader import EntityRow, OnError, Reject, RowError, iter_raw_rows, parse_row


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
        self.row_vectors: dict[str, tuple[np.ndarray, str | None]] = {}
        self.derived: dict[str, Any] = {}

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
        lo = int(np.searchsorted(self._id_hash_sorted, h, side="left"))
        hi = int(np.searchsorted(self._id_hash_sorted, h, side="right"))
        for row in self._id_rows_sorted[lo:hi]:
            if self.alive[row] and self.ids[int(row)] == entity_id:
                return int(row)
        return None

    def __contains__(self, entity_id: str) -> bool:
        return self.row_of(entity_id) is not None

    # ------------------------------------------------------------------ row accessors

    def entity_id(self, row: int) -> str:
        return self.ids[row]

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
        return Candidate(
            entity_id=self.ids[row],
            label=self.label(row),
            aliases=self.aliases(row),
            description=self.descriptions[row],
            entity_type=self.types[row],
            popularity=int(self.popularity[row]),
            metadata=self.metadata(row),
            source=source,
            score=float(score),
            matched_name=matched_name,
        )

    def render(self, rows: Iterable[int], template: str) -> list[str]:
        """Entity texts made with a template such as ``"{label}: {description}"``."""
        return [render_template(template, self.fields(int(r))) for r in rows]

    def name_entity_rows(self) -> np.ndarray:
        """The entity row of every name."""
        return np.repeat(np.arange(self.num_rows, dtype=np.int64), np.diff(self.name_start))

    # ------------------------------------------------------------------ loading

    def load(
        self,
        source: str | Path | Iterable[Mapping] | Mapping,
        *,
        overwrite: bool = False,
        on_error: OnError = "raise",
        rejects_path: str | Path | None = None,
    ) -> LoadReport:
        """Add entities from a JSONL(.gz) path, a list of dicts or a dict of dicts.

        ``overwrite=False`` keeps an already loaded id (counted in ``skipped_existing``);
        ``overwrite=True`` replaces it. A bad row raises :class:`KnowledgeBaseError` naming
        the file, line and field, or with ``on_error="skip"`` becomes a reject and loading goes on.
        """
        if on_error not in ("raise", "skip"):
            raise KnowledgeBaseError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        report = LoadReport()
        rows: list[EntityRow] = []
        seen: dict[str, tuple[str, int]] = {}
        vector_dim: int | None = None
        for source_name, line, raw in iter_raw_rows(source):
            try:
                row = parse_row(raw)
                if row.entity_id in seen:
                    first_source, first_line = seen[row.entity_id]
                    raise RowError(
                        "entity_id",
                        f"duplicate id {row.entity_id!r} (first at {first_source}, line {first_line})",
                    )
                if row.embedding is not None:
                    if vector_dim is None:
                        vector_dim = len(row.embedding)
                    elif len(row.embedding) != vector_dim:
                        raise RowError(
                            "embedding", f"has {len(row.embedding)} dimensions, earlier rows {vector_dim}"
                        )
            except RowError as exc:
                reject = Reject(source_name, line, exc.field, exc.reason)
                if on_error == "raise":
                    raise KnowledgeBaseError(reject.message()) from None
                report.rejected.append(reject)
                continue
            seen[row.entity_id] = (source_name, line)
            rows.append(row)
        if rejects_path is not None:
            with open(rejects_path, "ab") as handle:
                for reject in report.rejected:
                    handle.write(orjson.dumps(reject.to_dict()) + b"\n")
        with self.lock:
            self._append(rows, overwrite, report)
        return report

    def _append(self, rows: list[EntityRow], overwrite: bool, report: LoadReport) -> None:
        fresh: list[EntityRow] = []
        for row in rows:
            existing = self.row_of(row.entity_id)
            if existing is None:
                fresh.append(row)
            elif overwrite:
                self.alive[existing] = False
                fresh.append(row)
                report.overwritten += 1
            else:
                report.skipped_existing += 1
        report.loaded = len(fresh) - report.overwritten
        if not fresh:
            return
        first_row = self.num_rows
        self.ids = self.ids.concat(StringColumn.from_strings(r.entity_id for r in fresh))
        name_counts = np.fromiter((1 + len(r.aliases) for r in fresh), dtype=np.int64, count=len(fresh))
        self.names = self.names.concat(StringColumn.from_strings(_names_of(fresh)))
        self.name_start = np.concatenate([self.name_start, self.name_start[-1] + np.cumsum(name_counts)])
        self.descriptions = self.descriptions.concat(StringColumn.from_strings(r.description for r in fresh))
        self.types = self.types.concat(StringColumn.from_strings(r.entity_type for r in fresh))
        self.popularity = np.concatenate(
            [self.popularity, np.fromiter((r.popularity for r in fresh), dtype=np.int64, count=len(fresh))]
        )
        self.extra = self.extra.concat(
            StringColumn.from_strings(orjson.dumps(r.metadata).decode() if r.metadata else "" for r in fresh)
        )
        self.alive = np.concatenate([self.alive, np.ones(len(fresh), dtype=bool)])
        self._add_row_vectors(fresh, first_row)
        self._reindex_ids()
        self.version += 1

    def _add_row_vectors(self, fresh: list[EntityRow], first_row: int) -> None:
        """Keep vectors that came inside the rows (glinker 0.1.x ``embedding`` field)."""
        with_vectors = [i for i, r in enumerate(fresh) if r.embedding is not None]
        if not with_vectors:
            return
        dim = len(fresh[with_vectors[0]].embedding)
        old, model_id = self.row_vectors.get("entities", (np.zeros((first_row, dim), np.float32), None))
        if old.shape[1] != dim:
            raise KnowledgeBaseError(f"row embeddings have {dim} dimensions, loaded ones {old.shape[1]}")
        matrix = np.full((first_row + len(fresh), dim), np.nan, dtype=np.float32)
        matrix[: old.shape[0]] = old
        for i in with_vectors:
            matrix[first_row + i] = fresh[i].embedding
        model_ids = {fresh[i].embedding_model_id for i in with_vectors} | ({model_id} - {None})
        if len(model_ids) > 1:
            raise KnowledgeBaseError(f"row embeddings come from several models: {sorted(map(str, model_ids))}")
        self.row_vectors["entities"] = (matrix, next(iter(model_ids)))

    def _reindex_ids(self) -> None:
        hashes = self.ids.hashes()
        order = np.argsort(hashes, kind="stable")
        self._id_hash_sorted = hashes[order]
        self._id_rows_sorted = order.astype(np.int64)

    def clear(self) -> None:
        with self.lock:
            self._reset()


def _names_of(rows: list[EntityRow]) -> Iterable[str]:
    for row in rows:
        yield row.label
        yield from row.aliases
