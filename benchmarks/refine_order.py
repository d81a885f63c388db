"""refine sq8: re-scoring from codes in the order of the IVF lists (what glinker writes since format 5)
against codes in row order (before), on the same index, the same hits and the same queries.

Vectors: unit-length noisy copies of 20,000 random centres (a clustered set, like name embeddings),
generated here. glinker's ``VectorIndex.build(..., refine="sq8")`` gives the list-ordered index; the
row-ordered one is the same IVF with its lists holding row ids again and the codes written in row
order, searched by FAISS's ``IndexRefine`` as before. Prints queries/s of each, best of the rounds
(alternating), their ratio, and the share of identical result ids.

    python benchmarks/refine_order.py --vectors 3M [--queries 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from kb_scale import count

from glinker.kb.ivf_lists import list_ids
from glinker.kb.vector_index import VectorIndex, best_of

DIM = 384


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.7 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def in_row_order(index: VectorIndex, matrix: np.ndarray):
    """FAISS's IndexRefine over ``index``'s IVF with row ids in its lists and the codes in row order."""
    ivf = faiss.clone_index(index.index)
    for ids in list_ids(ivf):
        ids[:] = index.order[ids]
    codes = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    codes.sq, codes.is_trained = index.refine.sq, True
    for lo in range(0, len(matrix), 500_000):
        codes.add(matrix[lo : lo + 500_000])
    refined = faiss.IndexRefine(ivf, codes)
    refined.k_factor = index.params["k_factor"]
    return refined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default="3M")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = count(args.vectors)
    centres = np.random.default_rng(0).standard_normal((20_000, DIM)).astype(np.float32)
    matrix = np.concatenate([clustered(min(500_000, n - lo), lo, centres) for lo in range(0, n, 500_000)])
    started = time.perf_counter()
    index = VectorIndex.build(matrix, "ivf", search={"nprobe": 2, "k_factor": 16}, refine="sq8")
    before = in_row_order(index, matrix)
    print(f"{n:,} vectors, nlist {index.params['nlist']}, nprobe 2, k_factor 16; built in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    queries = clustered(args.queries, 99, centres)
    searches = {"list order": lambda: index.search(queries, 30)[1],
                "row order": lambda: best_of(*before.search(queries, 30), 30)[1]}
    best, ids = dict.fromkeys(searches, 0.0), {}
    for _ in range(args.rounds):
        for name, search in searches.items():
            started = time.perf_counter()
            ids[name] = search()
            best[name] = max(best[name], len(queries) / (time.perf_counter() - started))
        print({name: round(qps) for name, qps in best.items()}, flush=True)
    print(f"list order / row order: {best['list order'] / best['row order']:.2f}x; "
          f"identical ids: {np.mean(ids['list order'] == ids['row order']):.5f}")


if __name__ == "__main__":
    main()
