"""FAISS inner-product indexes over unit vectors, chosen by size.

- ``flat``: exact search; the default up to ``FLAT_LIMIT`` (250k) vectors.
- ``hnsw``: graph index (HNSW32, efSearch 128); no training, supports adding vectors.
- ``ivf``: IVF with 8-bit scalar quantisation, trained on a sample; the default above FLAT_LIMIT (a
  1M x 384 index takes 0.4 GB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FLAT_LIMIT = 250_000


@dataclass
class VectorIndex:
    kind: str
    index: Any
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, matrix: np.ndarray, kind: str = "auto", seed: int = 0, progress: bool = False) -> VectorIndex:
        import faiss

        n, dim = matrix.shape
        if kind == "auto":
            kind = "flat" if n <= FLAT_LIMIT else "ivf"
        if kind == "flat":
            index, params = faiss.IndexFlatIP(dim), {}
        elif kind == "hnsw":
            params = {"M": 32, "efConstruction": 80, "efSearch": 128}
            index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params["efConstruction"]
            index.hnsw.efSearch = params["efSearch"]
        elif kind == "ivf":
            nlist = int(min(65536, max(1, 4 * math.sqrt(max(n, 1)))))
            params = {"nlist": nlist, "nprobe": min(nlist, 32), "quantizer": "SQ8", "train_size": min(n, 40 * nlist)}
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            rng = np.random.default_rng(seed)
            sample = matrix[np.sort(rng.choice(n, params["train_size"], replace=False))] if n else matrix
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
            index.nprobe = params["nprobe"]
        else:
            raise ValueError(f"unknown index type {kind!r}; expected auto, flat, hnsw or ivf")
        built = cls(kind, index, params)
        built.add(matrix, progress=progress)
        return built

    def add(self, matrix: np.ndarray, chunk: int = 100_000, progress: bool = False) -> None:
        """Append vectors (their ids continue from the current size)."""
        bar = None
        if progress and len(matrix) > chunk:
            from tqdm import tqdm

            bar = tqdm(total=len(matrix), desc=f"indexing ({self.kind})", unit="vec")
        for lo in range(0, len(matrix), chunk):
            part = np.ascontiguousarray(matrix[lo : lo + chunk], dtype=np.float32)
            self.index.add(part)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing hits have id -1."""
        k = max(1, min(k, self.size)) if self.size else 1
        if not self.size or not len(queries):
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, params: dict[str, Any]) -> VectorIndex:
        import faiss

        index = faiss.read_index(str(path))
        if kind == "hnsw":
            index.hnsw.efSearch = params.get("efSearch", 128)
        elif kind == "ivf":
            index.nprobe = params.get("nprobe", 32)
        return cls(kind, index, params)
