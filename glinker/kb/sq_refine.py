"""``refine: sq8``: IVF hits re-scored against 8-bit codes of every vector instead of the vectors themselves.

The codes are a FAISS ``IndexScalarQuantizer`` (QT_8bit: a min/max range per dimension, trained on the
IVF's training sample), a quarter of the float32 vectors and half of float16 ones, kept in their own file
(``index.names.refine.faiss``) and memory-mapped from it (``IO_FLAG_MMAP_IFC``): a 10M-vector KB searches
with 3.8 GB of codes mapped instead of 7.7 GB of float16 vectors, and FAISS re-scores in C++ (``IndexRefine``).
Scores are those of the decoded codes (within ~0.02 of exact for unit vectors). Since format 5 the codes
are in the order of the IVF lists (the lists hold code numbers, ``index.names.refine.order.npy`` the row of
each), so the hits of a query, from a few lists, are re-scored from a few runs of codes: 1.37x the queries/s
of codes in row order at 3M vectors (``benchmarks/refine_order.py``). The codes are
written a block of vectors at a time, never all in memory: the file is FAISS's own format (the header of
the trained, empty index with its counts set, then the codes), which ``faiss.read_index`` reads back.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from .columns import release_pages

SQ8 = "sq8"
REFINES = ("vectors", SQ8)  # re-scored from the KB's vectors (exact) or from 8-bit codes
NTOTAL = slice(8, 16)  # where FAISS's index header keeps ntotal (after the fourcc and d)


def refine_path(index_path: Path) -> Path:
    """``index.names.faiss`` -> ``index.names.refine.faiss``."""
    return index_path.with_name(f"{index_path.stem}.refine{index_path.suffix}")


def trained(sample: np.ndarray):
    """An empty 8-bit scalar quantiser (inner product) trained on ``sample``."""
    import faiss

    index = faiss.IndexScalarQuantizer(sample.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def order_path(index_path: Path) -> Path:
    """``index.names.faiss`` -> ``index.names.refine.order.npy``: the row of each code (codes in list order)."""
    return index_path.with_name(f"{index_path.stem}.refine.order.npy")


def write_encoded(path: Path, quantizer, matrix: np.ndarray, rows: np.ndarray | None = None,
                  chunk: int = 100_000) -> None:
    """Write ``quantizer`` (trained, empty) holding the codes of the rows of ``matrix`` (``rows``, in that
    order; all, in order, when None) to ``path``, encoding ``chunk`` rows at a time (the pages of a
    memory-mapped ``matrix`` are released after each)."""
    import faiss

    header = bytearray(faiss.serialize_index(quantizer).tobytes())  # ends with the codes' byte count (0)
    n, code_size = len(matrix) if rows is None else len(rows), int(quantizer.code_size)
    header[NTOTAL] = np.int64(n).tobytes()
    header[-8:] = np.uint64(n * code_size).tobytes()
    with open(path, "wb") as handle:
        handle.write(header)
        for lo in range(0, n, chunk):
            block = (np.ascontiguousarray(matrix[lo : lo + chunk], dtype=np.float32) if rows is None
                     else _gathered(matrix, rows[lo : lo + chunk]))
            handle.write(quantizer.sa_encode(block).tobytes())
            release_pages(matrix)


def _gathered(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix[rows]`` as float32, read in ascending row order (forward through a memory-mapped file)."""
    ascending = np.argsort(rows)
    block = np.empty((len(rows), matrix.shape[1]), np.float32)
    block[ascending] = matrix[rows[ascending]]
    return block


def mapped(path: Path, read_ahead: bool = True):
    """The codes of ``path`` memory-mapped (read-only: see :func:`in_memory`). The file is read once on a
    background thread, into the page cache only: re-scoring touches codes at random, and on a cold file
    each fault reads a few pages (10M vectors: 240 queries/s cold against 4,400 once cached; the
    kernel's ``WILLNEED`` advice read nothing ahead on this machine)."""
    import faiss

    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    if read_ahead:
        threading.Thread(target=_read_through, args=(path,), name="glinker-sq8-readahead", daemon=True).start()
    return index


def _read_through(path: Path, block: int = 8 << 20) -> None:
    """Read ``path`` from start to end into one small buffer (what stays is the page cache)."""
    buffer = bytearray(block)
    try:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    except OSError:  # gone or unreadable: only the page cache stays cold
        pass


def encoded(quantizer, matrix: np.ndarray, rows: np.ndarray | None = None):
    """The codes of ``matrix`` (its ``rows`` in that order, when given), memory-mapped from a temporary file
    (removed once mapped: the mapping keeps it) beside the file ``matrix`` is mapped from, if it is (the
    system's temporary folder may be memory)."""
    folder = Path(matrix.filename).parent if isinstance(getattr(matrix, "filename", None), str) else None
    handle, name = tempfile.mkstemp(prefix=".glinker-sq8-", suffix=".faiss", dir=folder)
    os.close(handle)
    try:
        write_encoded(Path(name), quantizer, matrix, rows)
        return mapped(Path(name), read_ahead=False)  # just written: cached
    finally:
        os.unlink(name)


def release_mapped(index) -> None:
    """Unmap from this process the whole pages of mapped codes that a pass over them (the build-time tuning,
    a save) faulted in, as ``columns.release_pages`` does for the vectors: they stay in the page cache."""
    size = int(index.ntotal) * int(index.code_size)
    if not size:
        return
    import faiss

    start = faiss.rev_swig_ptr(index.codes.data(), size).ctypes.data
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, (start + size) // page * page
    if last > first:
        ctypes.CDLL(None, use_errno=True).madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first),
                                                  mmap.MADV_DONTNEED)


def in_memory(index):
    """A copy of mapped codes in memory, which can take more vectors (FAISS's clone would share the mapping)."""
    import faiss

    copy = faiss.IndexScalarQuantizer(index.d, index.sq.qtype, index.metric_type)
    copy.sq = index.sq
    copy.is_trained = True
    codes = faiss.rev_swig_ptr(index.codes.data(), index.ntotal * index.code_size)
    copy.add_sa_codes(codes.reshape(index.ntotal, index.code_size))
    return copy
