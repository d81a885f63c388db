"""KB scale: build, disk size, load time, RSS, search throughput and approximate-vs-exact recall.

Synthetic entities (one name each) with synthetic unit vectors of dim 384, each a noisy copy
(cosine ~0.85) of a seed vector. Seeds are the real MiniLM vectors of the 78k MEDIC names when the
benchmark cache has them (benchmarks/candidate_recall.py builds it), so that neighbourhoods look
like those of real name embeddings; otherwise 50k random vectors near a 32-dimensional subspace.
(I.i.d. random vectors, whose neighbours are all equally far, would make "recall against exact
search" meaningless.) Queries are noisy copies of entity vectors. Each phase runs in its own process so peak RSS is
measured per phase; the search phase's RSS is read before the exact search used to score recall.

    python benchmarks/kb_scale.py --entities 100k
    python benchmarks/kb_scale.py --entities 1M [--index auto|flat|hnsw|ivf] [--dtype float16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import CACHE, peak_rss_mib

ENCODER_ID = "synthetic/seeded-384"
LATENT_DIM = 32
REAL_SEEDS = CACHE / "medic-minilm" / "vectors.names.npy"


@dataclass
class SyntheticEncoder:
    """Stands in for a real encoder: the vectors are given, nothing is ever encoded."""

    model_id: str = ENCODER_ID
    dim: int = 384

    def encode(self, texts, **kwargs):
        raise RuntimeError("the synthetic benchmark never encodes text")


def count(text: str) -> int:
    text = text.lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def seed_vectors(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    if REAL_SEEDS.exists() and dim == 384:
        return np.load(REAL_SEEDS).astype(np.float32), "MEDIC MiniLM name vectors"
    basis = rng.standard_normal((LATENT_DIM, dim)).astype(np.float32)
    seeds = rng.standard_normal((50_000, LATENT_DIM)).astype(np.float32) @ basis
    return seeds / np.linalg.norm(seeds, axis=1, keepdims=True), "random 32-d latent vectors"


def synthetic_vectors(n: int, dim: int, seed: int, dtype: str, chunk: int = 200_000) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    seeds, origin = seed_vectors(dim, rng)
    out = np.empty((n, dim), dtype=dtype)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        part = seeds[rng.integers(0, len(seeds), m)] + (0.6 / np.sqrt(dim)) * rng.standard_normal((m, dim)).astype(np.float32)
        out[lo : lo + m] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out, origin


def build(n: int, out: Path, dim: int, index: str, dtype: str) -> dict:
    from glinker.kb import KnowledgeBase
    from glinker.kb.vectors import VectorSet

    started = time.perf_counter()
    kb = KnowledgeBase()
    kb.load({"entity_id": f"E{i:08d}", "label": f"synthetic entity {i}", "entity_type": "thing"} for i in range(n))
    loaded = time.perf_counter()
    matrix, origin = synthetic_vectors(n, dim, seed=0, dtype=dtype)
    kb.vector_store.sets[("names", ENCODER_ID, "{label}")] = VectorSet("names", ENCODER_ID, "{label}", matrix)
    vectors_made = time.perf_counter()
    kb.vector_index(SyntheticEncoder(dim=dim), "names", index_type=index, progress=False)
    indexed = time.perf_counter()
    manifest = kb.save_dir(out, ENCODER_ID, None, index_type=index, dtype=dtype)
    return {
        "seeds": origin,
        "build_s": round(time.perf_counter() - started, 2),
        "load_rows_s": round(loaded - started, 2),
        "index_s": round(indexed - vectors_made, 2),
        "save_s": round(time.perf_counter() - indexed, 2),
        "index": manifest["index"]["type"],
        "index_params": manifest["index"]["params"],
        "disk_mib": round(sum(f["bytes"] for f in manifest["files"].values()) / 2**20, 1),
        "build_peak_rss_mib": round(peak_rss_mib(), 1),
    }


def search(out: Path, queries: int, batch: int, k: int, exact_sample: int) -> dict:
    from glinker.kb import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase.open(out)
    load_s = time.perf_counter() - started
    index = kb.vector_store.indexes[("names", ENCODER_ID, "{label}")]
    vectors = kb.vector_store.sets[("names", ENCODER_ID, "{label}")].matrix
    rng = np.random.default_rng(1)
    picks = np.sort(rng.choice(len(vectors), queries, replace=False))
    q = np.asarray(vectors[picks], dtype=np.float32) + 0.02 * rng.standard_normal((queries, vectors.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index.search(q[:batch], k)
    started = time.perf_counter()
    found = [index.search(q[lo : lo + batch], k)[1] for lo in range(0, queries, batch)]
    search_s = time.perf_counter() - started
    search_rss = peak_rss_mib()
    approx = np.concatenate(found)[:exact_sample]
    exact = exact_top_k(vectors, q[:exact_sample], k)
    overlap = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True)])
    return {
        "load_s": round(load_s, 3),
        "mentions_per_s": round(queries / search_s, 1),
        f"recall_vs_exact@{k}": round(float(overlap), 4),
        "search_peak_rss_mib": round(search_rss, 1),
        "with_exact_check_peak_rss_mib": round(peak_rss_mib(), 1),
    }


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 50_000) -> np.ndarray:
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for lo in range(0, len(vectors), chunk):
        scores = queries @ np.asarray(vectors[lo : lo + chunk], dtype=np.float32).T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.arange(lo, lo + scores.shape[1])[None].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", default="100k")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--exact-sample", type=int, default=1000)
    parser.add_argument("--phase", choices=["build", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    n = count(args.entities)
    out = args.out or CACHE / f"scale-{n}-{args.index}-{args.dtype}"
    if args.phase == "build":
        print(json.dumps(build(n, out, args.dim, args.index, args.dtype)))
        return
    if args.phase == "search":
        print(json.dumps(search(out, args.queries, args.batch, args.k, args.exact_sample)))
        return
    result = {"benchmark": "kb_scale", "entities": n, "dim": args.dim, "dtype": args.dtype,
              "batch": args.batch, "k": args.k}
    for phase in ("build", "search"):
        cmd = [sys.executable, __file__, "--phase", phase, "--entities", str(n), "--dim", str(args.dim),
               "--index", args.index, "--dtype", args.dtype, "--queries", str(args.queries), "--batch", str(args.batch),
               "--k", str(args.k), "--exact-sample", str(args.exact_sample), "--out", str(out)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    for key, value in result.items():
        print(f"{key:24} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
