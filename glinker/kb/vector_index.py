"""Inner-product indexes over unit vectors, chosen by size.

- ``flat``: exact search, numpy BLAS over the vectors in blocks (measured 2.5x faster than FAISS
  IndexFlatIP on this 2-core CPU: ``python benchmarks/kb_scale.py``); the default up to
  ``FLAT_LIMIT`` (250k) vectors. Nothing extra is stored on disk: the vectors are the index.
- ``hnsw``: FAISS HNSW32 graph (efSearch 128); no training, supports adding vectors.
- ``ivf``: FAISS IVF (nlist = sqrt(n)) with 4-bit product-quantisation fast scan (d/4 sub-quantisers,
  48 bytes per 384-d vector), trained on a sample; the default above FLAT_LIMIT. The
  ``k_factor * k`` best hits are re-scored exactly against the KB's own vectors (the memory-mapped
  ``vectors.names.npy``: no second copy). ``nprobe`` and ``k_factor`` are tuned when the index is
  built: for each ``k_factor`` of K_FACTORS the smallest power-of-two nprobe whose recall@30 against
  exact search, on ``TUNE_QUERIES`` of the KB's own vectors (held out of the training sample when the
  KB is larger than it), reaches the recall target (0.95 unless asked otherwise), and of those the
  pair that costs least (codes scanned + 100 per vector re-scored); the manifest records them with the
  recall achieved. The inverted lists are memory-mapped from the index file (see ivf_lists.py). With
  ``refine="sq8"`` the hits are re-scored against 8-bit codes of the vectors instead (sq_refine.py: half
  the pages of float16 vectors to keep mapped, re-scored in C++; scores within ~0.02 of exact; the codes
  in the order of the IVF lists, whose ids number them: ``order`` gives the row of each). kb_dirs
  written before (``refine: SQfp16``, FAISS re-scoring against float16 copies inside the index file)
  open and search as they did.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import replace_file
from .columns import load_array, release_pages, save_in_blocks
from .ivf_lists import is_fast_scan, lists_in_memory, read_mapped, renumber_in_list_order, write_mapped
from .sq_refine import (
    REFINES,
    SQ8,
    encoded,
    in_memory,
    mapped,
    order_path,
    refine_path,
    release_mapped,
    trained,
)

INDEX_TYPES = ("flat", "hnsw", "ivf")
FLAT_LIMIT = 250_000
BLOCK_ROWS = 32_768
RECALL_TARGET = 0.95
RECALL_AT = 30
TUNE_QUERIES = 500
K_FACTORS = (4, 8, 16, 32)  # hits re-scored per hit asked, each tried
PLATEAU = 0.002  # a recall gain this small from doubling nprobe: stop doubling
# fast-scan codes one re-scored hit costs as much as: a gather + dot in numpy, or FAISS's 8-bit refine
# (measured at 10M vectors: python benchmarks/kb_scale.py --entities 10M --refine sq8)
RESCORE_CODES = {"vectors": 100, SQ8: 13}
RESCORE_QUERIES = 64  # queries whose hits are gathered and re-scored at once
SEARCH_KEYS = ("nprobe", "k_factor", "efSearch")  # what a user may override after the build


@dataclass
class VectorIndex:
    kind: str
    index: Any = None  # FAISS index (hnsw, ivf)
    params: dict[str, Any] = field(default_factory=dict)
    matrix: np.ndarray | None = None  # the vectors: searched (flat) or re-scored against (ivf)
    refine: Any = None  # refine sq8: the FAISS 8-bit codes hits are re-scored against
    order: np.ndarray | None = None  # refine sq8 since format 5: the row of each code (codes in list order)
    # held by FAISS searches, adds and saves: an add or a save swaps the lists of an index searched meanwhile
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.matrix) if self.kind == "flat" else int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1] if self.kind == "flat" else int(self.index.d)

    @property
    def refine_mapped(self) -> bool:
        """True where the 8-bit codes are mapped from a file (read-only: copied into memory before an add)."""
        return self.refine is not None and not self.refine.codes.is_owned

    @property
    def rescores(self) -> bool:
        """True where hits are re-scored here against ``matrix`` (ivf built since refine: vectors)."""
        return self.params.get("refine") == "vectors"

    @classmethod
    def build(cls, matrix: np.ndarray, kind: str = "auto", seed: int = 0, progress: bool = False,
              recall_target: float = RECALL_TARGET, search: dict[str, Any] | None = None,
              refine: str = "vectors") -> VectorIndex:
        """Index ``matrix``; an ivf index is tuned to ``recall_target`` unless ``search`` gives its parameters,
        and re-scores its hits against ``refine``: the vectors, or their 8-bit codes (``sq8``)."""
        if refine not in REFINES:
            raise ValueError(f"unknown refine {refine!r}; expected one of {REFINES}")
        n, dim = matrix.shape
        if kind == "auto":
            kind = "flat" if n <= FLAT_LIMIT else "ivf"
        if kind == "flat":
            built = cls("flat", matrix=np.zeros((0, dim), np.float32))
        elif kind == "hnsw":
            built = cls("hnsw", _hnsw(dim), {"M": 32, "efConstruction": 80, "efSearch": 128})
        elif kind == "ivf":
            built, held_out, quantizer = _ivf(matrix, seed, refine)
        else:
            raise ValueError(f"unknown index type {kind!r}; expected auto, flat, hnsw or ivf")
        built.add(matrix, progress=progress)
        if kind == "ivf":
            built.matrix = matrix
            if quantizer is not None:
                built.order = renumber_in_list_order(built.index)
                built.refine = encoded(quantizer, matrix, built.order)
                built.params["codes_order"] = "lists"
            if not search:
                built.tune(held_out, recall_target)
        built.configure(**(search or {}))
        return built

    def add(self, matrix: np.ndarray, chunk: int = 100_000, progress: bool = False) -> None:
        """Append vectors (their ids continue from the current size)."""
        if self.kind == "flat":
            self.matrix = np.concatenate([self.matrix, np.asarray(matrix, dtype=np.float32)])
            return
        from tqdm import tqdm

        with self.lock, tqdm(total=len(matrix), desc=f"indexing ({self.kind})", unit="vec",
                             disable=not progress or len(matrix) <= chunk) as bar:
            if self.params.get("lists") == "mapped":
                lists_in_memory(self.index)  # lists mapped from a kb_dir are read-only
            if self.refine_mapped:
                self.refine = in_memory(self.refine)
            for lo in range(0, len(matrix), chunk):
                part = np.ascontiguousarray(matrix[lo : lo + chunk], dtype=np.float32)
                self.index.add(part)
                if self.refine is not None:
                    self.refine.add(part)
                release_pages(matrix)
                bar.update(len(part))
            if self.order is not None:  # added codes come after the others, numbered as their rows
                self.order = np.concatenate([self.order, np.arange(len(self.order), self.size)])

    def extend_to(self, matrix: np.ndarray) -> None:
        """Add the rows of ``matrix`` past the current size; ``matrix`` (all rows) is what ivf re-scores against."""
        self.add(matrix[self.size :])
        if self.rescores:
            self.matrix = matrix

    def configure(self, **search: Any) -> None:
        """Override search parameters (``nprobe``, ``k_factor`` for ivf, ``efSearch`` for hnsw)."""
        unknown = set(search) - set(SEARCH_KEYS)
        if unknown:
            raise ValueError(f"unknown search parameters {sorted(unknown)}; expected some of {SEARCH_KEYS}")
        self.params.update(search)
        if self.index is not None:
            _tuned(self.index, self.kind, self.params)

    def tune(self, rows: np.ndarray, target: float = RECALL_TARGET, k: int = RECALL_AT) -> float:
        """For each ``k_factor`` the smallest power-of-two nprobe whose recall@k against exact search, with the
        vectors of ``rows`` as queries (each query's own row left out of both: a query is a new point, and
        finding itself would flatter the recall by 1/k), reaches ``target``; the cheapest pair is kept (see
        ``_work``; the largest k_factor with its last nprobe where none does). Records and returns the recall."""
        rows = np.sort(rows)
        queries = np.asarray(self.matrix[rows], dtype=np.float32)
        exact = _others(_exact_top_k(self.matrix, queries, k + 1, release=True)[1], rows, k)
        tried = [(*self._sweep_nprobe(queries, rows, exact, target, k_factor), k_factor) for k_factor in K_FACTORS]
        met = [t for t in tried if t[0] >= target]
        recall, nprobe, k_factor = min(met, key=lambda t: self._work(t[1], t[2], k)) if met else tried[-1]
        self.configure(nprobe=nprobe, k_factor=k_factor)
        release_pages(self.matrix)
        if self.refine_mapped:
            release_mapped(self.refine)
        self.params.update(recall_target=target, recall_at=k, recall=round(recall, 4), tune_queries=len(queries))
        return recall

    def _sweep_nprobe(self, queries: np.ndarray, rows: np.ndarray, exact: np.ndarray, target: float,
                      k_factor: int) -> tuple[float, int]:
        """Double nprobe until the recall reaches ``target`` or stops growing (the codes, not the lists, limit
        it); (recall, nprobe) of the last one tried."""
        nlist, recall = self.params["nlist"], 0.0
        for nprobe in sorted({min(nlist, 2**p) for p in range(int(math.log2(nlist)) + 2)}):
            self.configure(nprobe=nprobe, k_factor=k_factor)
            found = self.search(queries, exact.shape[1] + 1)[1]
            recall, before = recall_at(_others(found, rows, exact.shape[1]), exact), recall
            if recall >= target or recall - before < PLATEAU:
                break
        return recall, nprobe

    def _work(self, nprobe: int, k_factor: int, k: int) -> float:
        """Cost of one query, in codes scanned: the lists probed and the hits re-scored (RESCORE_CODES each)."""
        return nprobe * self.size / self.params["nlist"] + RESCORE_CODES[self.params["refine"]] * k_factor * k

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first (exact search: ties by id); missing hits have id -1."""
        k = max(1, min(k, self.size)) if self.size else 1
        if not self.size or not len(queries):
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.kind == "flat":
            return _exact_top_k(self.matrix, queries, k)
        if self.rescores:
            return self._rescored(queries, k)
        if self.refine is not None:
            return self._refined(queries, k)
        with self.lock:
            return self.index.search(queries, k)

    def _refined(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k_factor * k`` best IVF hits re-scored by FAISS against the 8-bit codes; best k, ties by id."""
        import faiss

        with self.lock:
            refined = faiss.IndexRefine(self.index, self.refine)
            refined.k_factor = self.params.get("k_factor", 4)
            scores, ids = refined.search(queries, k)
            order = self.order
        if order is not None:
            ids = np.where(ids >= 0, order[np.maximum(ids, 0)], -1)
        scores[ids < 0] = -np.inf
        return best_of(scores, ids, k)

    def _rescored(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k_factor * k`` best IVF hits re-scored exactly against the vectors; best k, ties by id."""
        with self.lock:
            _, ids = self.index.search(queries, min(self.size, k * self.params.get("k_factor", 4)))
            matrix = self.matrix
        scores = np.empty(ids.shape, np.float32)

        def rescore(lo: int) -> None:
            # one gather of the hits' rows (deduplicating them first cost twice the time: hits rarely repeat)
            part = np.maximum(ids[lo : lo + RESCORE_QUERIES], 0)
            rows = np.take(matrix, part.ravel(), axis=0).astype(np.float32).reshape(*part.shape, -1)
            scores[lo : lo + RESCORE_QUERIES] = np.einsum("qkd,qd->qk", rows, queries[lo : lo + RESCORE_QUERIES])

        blocks = range(0, len(ids), RESCORE_QUERIES)
        if len(blocks) > 1:  # the gathers are page-fault bound and release the GIL: one thread per core
            list(_rescore_pool().map(rescore, blocks))
        else:
            rescore(0)
        scores[ids < 0] = -np.inf
        return best_of(scores, ids, k)

    def save(self, path: Path) -> list[Path]:
        """Write the FAISS index (flat needs no file: it is rebuilt from the vectors) and, with refine sq8,
        its codes beside it (``refine_path``); returns the files written. Fast-scan IVF lists are written to
        be memory-mapped when loaded (``lists: mapped``)."""
        if self.kind == "flat":
            return []
        import faiss

        with self.lock:  # written beside and renamed: ``path`` may be the file these lists are mapped from
            if self.kind == "ivf" and is_fast_scan(self.index):
                replace_file(path, lambda tmp: write_mapped(self.index, Path(tmp), path.name))
                self.params["lists"] = "mapped"
            else:
                replace_file(path, lambda tmp: faiss.write_index(self.index, tmp))
            written = [path]
            if self.refine is not None:
                replace_file(refine_path(path), lambda tmp: faiss.write_index(self.refine, tmp))
                written.append(refine_path(path))
                if self.refine_mapped:
                    release_mapped(self.refine)  # writing read every mapped code
            if self.order is not None:
                replace_file(order_path(path), lambda tmp: save_in_blocks(Path(tmp), self.order, "int64"))
                written.append(order_path(path))
        return written

    @classmethod
    def load(cls, path: Path | None, kind: str, params: dict[str, Any], vectors: np.ndarray) -> VectorIndex:
        if kind == "flat":
            return cls("flat", matrix=np.asarray(vectors, dtype=np.float32))
        import faiss

        params = dict(params)
        index = read_mapped(path) if params.get("lists") == "mapped" else faiss.read_index(str(path))
        refine = mapped(refine_path(path)) if params.get("refine") == SQ8 else None
        order = load_array(order_path(path)) if lists_ordered(params) else None
        return cls(kind, _tuned(index, kind, params), params, vectors, refine, order)


def lists_ordered(params: dict[str, Any]) -> bool:
    """True where refine sq8's codes are in the order of the IVF lists (format 5; before, in row order)."""
    return params.get("refine") == SQ8 and params.get("codes_order") == "lists"


@functools.cache
def _rescore_pool() -> ThreadPoolExecutor:
    """Threads that re-score blocks of hits (measured 2x on 2 cores at 1M vectors)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolExecutor(min(cores, 8), thread_name_prefix="glinker-rescore")


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` ids that ``found`` holds (recall@k against exact search)."""
    k = exact.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(e.tolist())) / k for f, e in zip(found, exact, strict=True)]))


def _others(found: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` ids of each row of ``found`` other than the row's ``own`` id."""
    return np.array([ids[ids != row][:k] for ids, row in zip(found, own, strict=True)])


def _hnsw(dim: int):
    import faiss

    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    return index


def _ivf(matrix: np.ndarray, seed: int, refine: str) -> tuple[VectorIndex, np.ndarray, Any]:
    """A trained IVF fast-scan index over ``matrix`` (empty), rows held out of its training sample, and for
    refine sq8 the 8-bit quantiser trained on the same sample (None otherwise)."""
    import faiss

    n, dim = matrix.shape
    nlist = int(min(65536, max(1, math.sqrt(max(n, 1)))))
    codes = f"PQ{dim // 4}x4fs" if dim % 8 == 0 else "SQ8"
    params = {"nlist": nlist, "nprobe": min(nlist, 8), "codes": codes, "refine": refine, "k_factor": 4,
              "train_size": min(n, max(100 * nlist, 50_000))}
    order = np.random.default_rng(seed).permutation(n)
    train = order[: params["train_size"]]
    held_out = order[params["train_size"] :][:TUNE_QUERIES] if n > params["train_size"] else order[:TUNE_QUERIES]
    index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    sample = np.ascontiguousarray(matrix[np.sort(train)], dtype=np.float32)
    release_pages(matrix)  # page fault-around maps most of a file cached whole, even for a 3% sample
    index.train(sample)
    quantizer = trained(sample) if refine == SQ8 else None
    return VectorIndex("ivf", _tuned(index, "ivf", params), params), held_out, quantizer


def _tuned(index, kind: str, params: dict[str, Any]):
    """Apply the search-time parameters (not stored in FAISS files) recorded in the manifest."""
    import faiss

    if kind == "hnsw":
        index.hnsw.efSearch = params.get("efSearch", 128)
    elif kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = params.get("nprobe", 8)
        if "k_factor" in params and params.get("refine") not in REFINES:  # FAISS's own refine (earlier kb_dirs)
            index.k_factor = params["k_factor"]
    return index


def best_of(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score desc, id asc) of each row."""
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1)


def _exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, release: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k by blocks of rows; ``release``: unmap each block's pages after it (a one-off pass over a
    memory-mapped matrix, e.g. at build time, that should not stay resident)."""
    best_s = np.zeros((len(queries), 0), np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for lo in range(0, len(matrix), BLOCK_ROWS):
        scores = queries @ np.asarray(matrix[lo : lo + BLOCK_ROWS], dtype=np.float32).T
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + lo], axis=1)
        if release:
            release_pages(matrix)
        if best_s.shape[1] > k:
            best_s, best_i = best_of(best_s, best_i, k)
    return best_of(best_s, best_i, k)
