"""Columnar storage: strings as one UTF-8 buffer plus offsets, and a vectorised 64-bit string hash.

A million entities cost a few numpy arrays, not a million Python objects per field, and a column
saved with ``np.save`` loads memory-mapped in microseconds.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import KnowledgeBaseError
from .checks import check_offsets, read_file

_P = np.uint64(1_000_003)
UTF8_BLOCK = 64 * 1024 * 1024  # bytes decoded at once when a column is checked
HASH_BLOCK = 1 << 16  # strings hashed at once by StringColumn.hashes


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """An .npy file, memory-mapped read-only, as a plain ndarray view: ``np.memmap`` indexing goes
    through Python and cost 7x more per lookup (a third of the L2 time on MEDIC)."""
    return np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of the file ``array`` is memory-mapped from (if it is) from this process: they stay
    in the page cache and fault back in when read, but a pass over a large file no longer leaves all of
    it counted in the process's resident memory."""
    while array is not None and not isinstance(array, mmap.mmap):
        if getattr(array, "mode", None) == "c":  # a copy-on-write np.memmap: unmapping would drop its changes
            return
        array = getattr(array, "_mmap", None) or getattr(array, "base", None)
    if array is not None:
        array.madvise(mmap.MADV_DONTNEED)


def save_in_blocks(path: Path, matrix: np.ndarray, dtype: str, block_rows: int = 1 << 16) -> None:
    """``np.save(path, matrix.astype(dtype))`` a block of rows at a time: neither a converted copy of the
    whole matrix nor all of a memory-mapped one is held at once."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                      "fortran_order": False, "shape": matrix.shape})
        for lo in range(0, len(matrix), block_rows):
            np.ascontiguousarray(matrix[lo : lo + block_rows], dtype=dtype).tofile(handle)
            release_pages(matrix)


class StringColumn:
    """An immutable sequence of strings stored as ``data`` (uint8) and ``offsets`` (int64, n+1)."""

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringColumn:
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        if encoded:
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(data, offsets)

    @classmethod
    def empty(cls) -> StringColumn:
        return cls(np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def take(self, indices: Iterable[int]) -> list[str]:
        return [self[int(i)] for i in indices]

    def tolist(self) -> list[str]:
        data = np.asarray(self.data)
        if len(data) and data.max() >= 128:
            return self.take(range(len(self)))
        text = data.tobytes().decode("ascii")
        bounds = self.offsets.tolist()
        return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def slice(self, lo: int, hi: int) -> StringColumn:
        """Strings ``lo`` to ``hi - 1`` (a view of their bytes)."""
        start = int(self.offsets[lo])
        return StringColumn(np.asarray(self.data[start : int(self.offsets[hi])]), self.offsets[lo : hi + 1] - start)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @staticmethod
    def concat_all(columns: Sequence[StringColumn]) -> StringColumn:
        """One column holding the strings of all ``columns`` in order (a single copy); empty for none."""
        if not columns:
            return StringColumn.empty()
        bases = np.cumsum([0] + [int(c.offsets[-1]) for c in columns[:-1]])
        data = np.concatenate([c.data for c in columns])
        offsets = np.concatenate([columns[0].offsets[:1]] + [c.offsets[1:] + b for c, b in zip(columns, bases, strict=True)])
        return StringColumn(data, offsets.astype(np.int64))

    def subset(self, indices: Sequence[int] | np.ndarray) -> StringColumn:
        return StringColumn.from_strings(self.take(indices))

    # ------------------------------------------------------------------ files

    @staticmethod
    def files(name: str) -> list[str]:
        """The two files of column ``name``: the bytes and the offsets."""
        return [f"{name}.data.npy", f"{name}.offsets.npy"]

    def save(self, directory: Path, name: str) -> list[Path]:
        paths = [directory / file for file in self.files(name)]
        np.save(paths[0], self.data)
        np.save(paths[1], self.offsets)
        return paths

    @classmethod
    def open(cls, directory: Path, name: str, utf8: bool) -> StringColumn:
        """A saved column, its bytes memory-mapped and its offsets read into memory (they are indexed one
        scalar at a time), checked: offsets that index the bytes at character boundaries and, with
        ``utf8``, the bytes decoded once."""
        data_path, offsets_path = (directory / file for file in cls.files(name))
        column = cls(read_file(data_path, load_array), read_file(offsets_path, load_array, False))
        column._check(data_path, offsets_path, utf8)
        release_pages(column.data)  # the check read them all: let lookups fault back only what they read
        return column

    def _check(self, data_path: Path, offsets_path: Path, utf8: bool) -> None:
        data, offsets = self.data, self.offsets
        if data.ndim != 1 or data.dtype != np.uint8:
            raise KnowledgeBaseError(f"{data_path}: expected bytes (uint8), got {data.dtype} {data.shape}")
        if offsets.ndim == 1 and len(offsets) and offsets[-1] != len(data):
            raise KnowledgeBaseError(f"{data_path}: {len(data)} bytes, but {offsets_path} ends at "
                                     f"{offsets[-1]} (one of them is corrupted)")
        check_offsets(offsets_path, offsets, len(data), data_path)
        if not utf8 or not len(data):
            return
        starts = offsets[:-1][np.diff(offsets) > 0]
        cuts = np.unique(np.concatenate([[0], offsets[np.searchsorted(offsets, np.arange(UTF8_BLOCK, offsets[-1], UTF8_BLOCK))],
                                         [offsets[-1]]]))
        try:
            if ((np.asarray(data[starts]) & 0xC0) == 0x80).any():
                raise UnicodeError("a string starts inside a character")
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
                np.asarray(data[lo:hi]).tobytes().decode("utf-8")
        except UnicodeError as exc:
            raise KnowledgeBaseError(f"{data_path}: not UTF-8 text ({exc}; the file is corrupted)") from None

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash of every string (see :func:`span_hashes`), HASH_BLOCK strings at a time
        (span_hashes holds ~40 bytes per byte of text it hashes)."""
        out = np.empty(len(self), dtype=np.uint64)
        for lo in range(0, len(self), HASH_BLOCK):
            block = self.slice(lo, min(lo + HASH_BLOCK, len(self)))
            out[lo : lo + len(block)] = span_hashes(block.data, block.offsets[:-1], block.offsets[1:])
        return out


def span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hashes (mod 2**64) of ``codes[starts[i]:ends[i]]`` for every i, in one pass.

    ``h(s) = sum(s[j] * P**(len-1-j))`` is computed from prefix sums of ``codes[j] * P**-j``
    (P is odd, so invertible mod 2**64): equal spans hash equally wherever they are, and the same
    string gets the same hash in every process and run.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    n = len(codes)
    with np.errstate(over="ignore"):
        inv_powers = _powers(_P_INV, n)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((codes + np.uint64(1)) * inv_powers, out=prefix[1:])
        powers = _powers(_P, n + 1)
        raw = prefix[ends] - prefix[starts]
        shift = np.where(ends > 0, ends - 1, 0)
        return raw * powers[shift] + (ends - starts).astype(np.uint64)


def fixed_span_hashes(codes: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """:func:`span_hashes` of the spans ``codes[s:s + n]`` (all of length n), in n vector steps."""
    codes = np.asarray(codes, dtype=np.uint64)
    out = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for t in range(n):
            out *= _P
            out += codes[starts + t] + np.uint64(1)
        out += np.uint64(n)
    return out


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    if n:
        out[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(np.full(n - 1, base, dtype=np.uint64), out=out[1:])
    return out


_P_INV = np.uint64(pow(int(_P), -1, 2**64))


_MASK = 2**64 - 1
_P_INT = int(_P)


def string_hash(text: str) -> int:
    """The hash :func:`span_hashes` gives the UTF-8 bytes of ``text`` (Horner's rule, no numpy overhead)."""
    h = 0
    data = text.encode("utf-8")
    for byte in data:
        h = (h * _P_INT + byte + 1) & _MASK
    return (h + len(data)) & _MASK
