"""Checks shared by the stores of a kb_dir (entity columns, name index, vectors).

Checksums (``verify="full"``) prove the files are the ones built; these checks are cheap (in-memory
offsets and row numbers, plus a UTF-8 pass over the strings when checksums were skipped) and make a
corrupted file an error naming it, instead of an IndexError or UnicodeDecodeError at query time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import KnowledgeBaseError


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def manifest_error(path: Path, key: str, expected: str) -> KnowledgeBaseError:
    """The error for a manifest key of the wrong shape."""
    return KnowledgeBaseError(f"{path}: key {key!r} must be {expected}")


def read_file(path: Path, reader: Callable[..., Any], *args: Any) -> Any:
    """Run ``reader(path, *args)``; any failure becomes an error naming the file."""
    try:
        return reader(path, *args)
    except Exception as exc:  # noqa: BLE001 - numpy and FAISS raise many types on a bad file; all mean "bad file"
        raise KnowledgeBaseError(f"{path}: cannot load: {type(exc).__name__}: {exc}") from exc


def check_size(path: Path, expected: int) -> None:
    if not path.exists():
        raise KnowledgeBaseError(f"{path}: missing (listed in the manifest)")
    if path.stat().st_size != expected:
        raise KnowledgeBaseError(f"{path}: {path.stat().st_size} bytes, the manifest says {expected} (truncated or replaced)")


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
