"""Consistency checks of a kb_dir: the manifest's shape, and the arrays that index other arrays.

Checksums (``verify="full"``) prove the files are the ones built; these checks are cheap (in-memory
offsets and row numbers, plus a UTF-8 pass over the strings when checksums were skipped) and make a
corrupted file an error naming it, instead of an IndexError or UnicodeDecodeError at query time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError
from .columns import StringColumn

INDEX_TYPES = ("flat", "hnsw", "ivf")
UTF8_BLOCK = 64 * 1024 * 1024


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _listed(name: Any, files: dict[str, Any]) -> bool:
    return isinstance(name, str) and name in files


def check_manifest(path: Path, m: dict[str, Any], kinds: tuple[str, ...]) -> None:
    """Refuse a manifest whose keys have the wrong shape, or that names files outside the kb_dir."""

    def bad(key: str, expected: str) -> KnowledgeBaseError:
        return KnowledgeBaseError(f"{path}: key {key!r} must be {expected}")

    files = m.get("files")
    if not isinstance(files, dict):
        raise bad("files", "a mapping of file name to {bytes, sha256}")
    for name, info in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise bad("files", f"names of files inside the kb_dir, not {name!r}")
        if not isinstance(info, dict) or not _count(info.get("bytes")) or not isinstance(info.get("sha256"), str):
            raise bad(f"files.{name}", "{bytes: int, sha256: str}")
    for key in ("count", "names"):
        if not _count(m.get(key)):
            raise bad(key, "a non-negative integer")
    if m.get("dim") is not None and not _count(m["dim"]):
        raise bad("dim", "a non-negative integer or null")
    vectors = m.get("vectors", {})
    if not isinstance(vectors, dict):
        raise bad("vectors", "a mapping of kind to {file, rows, template}")
    for kind, info in vectors.items():
        if (kind not in kinds or not isinstance(info, dict) or not _listed(info.get("file"), files)
                or not _count(info.get("rows")) or "template" not in info
                or not isinstance(info["template"], (str, type(None)))):
            raise bad(f"vectors.{kind}", f"{{file listed in 'files', rows, template}} for a kind in {kinds}")
    if vectors and not isinstance(m.get("encoder"), str):
        raise bad("encoder", "the name of the encoder that made the vectors")
    index = m.get("index")
    if index is None:
        return
    if (not isinstance(index, dict) or index.get("type") not in INDEX_TYPES or "names" not in vectors
            or not _count(index.get("ntotal")) or not isinstance(index.get("params", {}), dict)
            or "file" not in index or (index["file"] is None) != (index["type"] == "flat")
            or (index["file"] is not None and not _listed(index["file"], files))):
        raise bad("index", f"null or {{type in {INDEX_TYPES}, file listed in 'files' (null for flat), ntotal, params}} "
                           "over the 'names' vectors")


def corrupted(path: Path, problem: str, sizes_from: str | Path | None = None) -> KnowledgeBaseError:
    """The error for a damaged file; ``sizes_from`` names the file(s) the expected sizes came from,
    since either side of a mismatch may be the damaged one."""
    if sizes_from is None:
        return KnowledgeBaseError(f"{path}: {problem} (the file is corrupted)")
    return KnowledgeBaseError(f"{path}: {problem}, sizes from {sizes_from} (one of them is corrupted)")


def check_offsets(path: Path, offsets: np.ndarray, total: int, total_from: str | Path | None = None) -> None:
    """``offsets`` must run from 0 to ``total`` (the size of ``total_from``) without going back."""
    if (offsets.ndim != 1 or offsets.dtype.kind not in "iu" or not len(offsets) or offsets[0] != 0
            or offsets[-1] != total or (np.diff(offsets) < 0).any()):
        raise corrupted(path, f"not an increasing index from 0 to {total}", total_from)


def check_rows(path: Path, rows: np.ndarray, length: int, upper: int, sizes_from: str | Path | None = None) -> None:
    """``rows`` must hold ``length`` row numbers below ``upper`` (sizes taken from ``sizes_from``)."""
    if (rows.ndim != 1 or rows.dtype.kind not in "iu" or len(rows) != length
            or (len(rows) and (rows.min() < 0 or rows.max() >= upper))):
        raise corrupted(path, f"expected {length} row numbers below {upper}", sizes_from)


def check_column(kb_dir: Path, name: str, column: StringColumn, utf8: bool) -> None:
    """Offsets that index the data at character boundaries; with ``utf8``, the data decoded once."""
    data_path, offsets_path = kb_dir / f"{name}.data.npy", kb_dir / f"{name}.offsets.npy"
    if column.data.ndim != 1 or column.data.dtype != np.uint8:
        raise KnowledgeBaseError(f"{data_path}: expected bytes (uint8), got {column.data.dtype} {column.data.shape}")
    offsets = column.offsets
    if offsets.ndim == 1 and len(offsets) and offsets[-1] != len(column.data):
        raise KnowledgeBaseError(f"{data_path}: {len(column.data)} bytes, but {offsets_path} ends at "
                                 f"{offsets[-1]} (one of them is corrupted)")
    check_offsets(offsets_path, offsets, len(column.data), data_path)
    if not utf8 or not len(column.data):
        return
    starts = offsets[:-1][np.diff(offsets) > 0]
    cuts = np.unique(np.concatenate([[0], offsets[np.searchsorted(offsets, np.arange(UTF8_BLOCK, offsets[-1], UTF8_BLOCK))],
                                     [offsets[-1]]]))
    try:
        if ((np.asarray(column.data[starts]) & 0xC0) == 0x80).any():
            raise UnicodeError("a string starts inside a character")
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            np.asarray(column.data[lo:hi]).tobytes().decode("utf-8")
    except UnicodeError as exc:
        raise KnowledgeBaseError(f"{data_path}: not UTF-8 text ({exc}; the file is corrupted)") from None


def check_name_index(kb_dir: Path, a: dict[str, np.ndarray], num_names: int, num_rows: int, deep: bool) -> None:
    """The name index arrays point inside one another, the names and the entity rows. The n-gram postings
    (memory-mapped, the largest arrays) are scanned only when ``deep`` (their checksums were not checked)."""
    num_keys = len(a["key_hash"])

    def path(name: str) -> Path:
        return kb_dir / f"names.{name}.npy"

    names = kb_dir / "entities.names.offsets.npy"
    check_rows(path("name_entity"), a["name_entity"], num_names, max(num_rows, 1),
               f"{names} and {kb_dir / 'entities.ids.offsets.npy'}")
    check_offsets(path("key_name_offsets"), a["key_name_offsets"], len(a["key_names"]), path("key_names"))
    check_rows(path("key_names"), a["key_names"], num_names, max(num_names, 1), names)
    check_offsets(path("canon_name_offsets"), a["canon_name_offsets"], len(a["canon_names"]), path("canon_names"))
    check_rows(path("canon_names"), a["canon_names"], len(a["canon_names"]), max(num_names, 1), names)
    if deep:
        check_offsets(path("gram_offsets"), a["gram_offsets"], len(a["post_keys"]), path("post_keys"))
        check_rows(path("post_keys"), a["post_keys"], len(a["post_keys"]), max(num_keys, 1), path("key_hash"))
    for name, length, source in (("key_name_offsets", num_keys + 1, "key_hash"), ("key_tokens", num_keys, "key_hash"),
                                 ("canon_name_offsets", len(a["canon_hash"]) + 1, "canon_hash"),
                                 ("gram_offsets", len(a["gram_hash"]) + 1, "gram_hash"),
                                 ("gram_idf", len(a["gram_hash"]), "gram_hash"),
                                 ("post_weights", len(a["post_keys"]), "post_keys")):
        if a[name].ndim != 1 or len(a[name]) != length:
            raise corrupted(path(name), f"expected {length} values, found {a[name].shape}", path(source))
