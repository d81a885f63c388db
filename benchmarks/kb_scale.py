"""KB scale: build, disk size, load time (cold and warm), RSS, search throughput and recall against exact search.

Synthetic entities (one name each) with synthetic unit vectors of dim 384, each a noisy copy
(cosine ~0.85) of a seed vector, from one of two distributions (``--seeds``): ``medic``, the real
MiniLM vectors of the 78k MEDIC names (from the benchmark cache, built by benchmarks/candidate_recall.py),
so that neighbourhoods look like those of real name embeddings; ``latent``, 50k random vectors near a
32-dimensional subspace, a harder case for IVF. (I.i.d. random vectors, whose neighbours are all
equally far, would make "recall against exact search" meaningless.) The build streams: entity rows
are generated and loaded in chunks, vectors written to disk chunk by chunk and memory-mapped from
there. The IVF index is tuned at build time to the recall target (``--recall-target``, 0.95) and the
manifest's nprobe and build-time recall are printed. Queries are noisy copies of entity vectors.

Each phase runs in its own process so peak RSS is measured per phase: ``build``; ``search`` after the
kb_dir's files were evicted from the page cache (posix_fadvise DONTNEED: a cold load), its RSS read
before the exact search used to score recall; ``warm``, a second load with the files cached, and the
time of a ``verify="full"`` open (checksums of every file). ``--phase names`` loads the synthetic
entities and builds their name index only (exact, canonical and n-gram lookups), printing its time,
its arrays' size and the peak RSS before and after it: the name index at sizes whose full build is
not run.

    python benchmarks/kb_scale.py --entities 100k,1M --seeds medic,latent
    python benchmarks/kb_scale.py --entities 10M --seeds medic [--index auto|flat|hnsw|ivf] [--dtype float16]
        [--refine vectors|sq8]   (sq8: hits re-scored against 8-bit codes of the vectors, their own cache dir)
    python benchmarks/kb_scale.py --phase names --entities 10M
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import CACHE, peak_rss_mib, rss_parts_mib

ENCODER_ID = "synthetic/seeded-384"
KEY = ("names", ENCODER_ID, "{label}")
LATENT_DIM = 32
REAL_SEEDS = CACHE / "medic-minilm" / "vectors.names.npy"
CHUNK = 200_000


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


def seed_vectors(seeds: str, dim: int, rng: np.random.Generator) -> np.ndarray:
    if seeds == "medic":
        if not REAL_SEEDS.exists() or dim != 384:
            sys.exit(f"--seeds medic needs {REAL_SEEDS} (python benchmarks/candidate_recall.py) and --dim 384")
        return np.load(REAL_SEEDS).astype(np.float32)
    basis = rng.standard_normal((LATENT_DIM, dim)).astype(np.float32)
    latent = rng.standard_normal((50_000, LATENT_DIM)).astype(np.float32) @ basis
    return latent / np.linalg.norm(latent, axis=1, keepdims=True)


def write_vectors(path: Path, n: int, dim: int, seeds: str, dtype: str) -> np.ndarray:
    """``n`` synthetic unit vectors written to ``path`` (.npy) a chunk at a time; returned memory-mapped."""
    rng = np.random.default_rng(0)
    centres = seed_vectors(seeds, dim, rng)
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                      "shape": (n, dim)})
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            part = centres[rng.integers(0, len(centres), m)]
            part += (0.6 / np.sqrt(dim)) * rng.standard_normal((m, dim)).astype(np.float32)
            (part / np.linalg.norm(part, axis=1, keepdims=True)).astype(dtype).tofile(handle)
    return np.load(path, mmap_mode="r")


def entity_rows(n: int):
    for i in range(n):
        yield {"entity_id": f"E{i:08d}", "label": f"synthetic entity {i}", "entity_type": "thing"}


def build(n: int, out: Path, dim: int, index: str, dtype: str, seeds: str, recall_target: float,
          refine: str) -> dict:
    from glinker.kb import KnowledgeBase
    from glinker.kb.vectors import VectorSet

    started = time.perf_counter()
    kb = KnowledgeBase()
    kb.load(entity_rows(n))
    loaded = time.perf_counter()
    source = out.parent / f".{out.name}.vectors.npy"
    matrix = write_vectors(source, n, dim, seeds, dtype)
    vectors_made = time.perf_counter()
    kb.vector_store.sets[KEY] = VectorSet(*KEY, matrix)
    kb.vector_store.configure(recall_target=recall_target, refine=refine)
    kb.vector_index(SyntheticEncoder(dim=dim), "names", index_type=index, progress=False)
    indexed = time.perf_counter()
    kb.name_index()
    named = time.perf_counter()
    manifest = kb.save_dir(out, ENCODER_ID, None, index_type=index, dtype=dtype)
    parts = rss_parts_mib()
    source.unlink()
    return {
        "build_s": round(time.perf_counter() - started, 1),
        "load_rows_s": round(loaded - started, 1),
        "vectors_s": round(vectors_made - loaded, 1),
        "index_s": round(indexed - vectors_made, 1),
        "name_index_s": round(named - indexed, 1),
        "save_s": round(time.perf_counter() - named, 1),
        "index": manifest["index"]["type"],
        "index_params": manifest["index"]["params"],
        "disk_mib": round(sum(f["bytes"] for f in manifest["files"].values()) / 2**20, 1),
        "build_peak_rss_mib": round(peak_rss_mib(), 1),
        **{f"build_end_{key}": value for key, value in parts.items()},
    }


def evict(directory: Path) -> None:
    """Drop the files of ``directory`` from the page cache, so that the next open reads them from disk."""
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_open(out: Path, verify: str):
    from glinker.kb import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase.open(out, verify=verify)
    return kb, round(time.perf_counter() - started, 2)


def search(out: Path, queries: int, batch: int, k: int, exact_sample: int) -> dict:
    from glinker.kb.columns import release_pages
    from glinker.kb.vector_index import _exact_top_k, recall_at

    evict(out)
    kb, load_s = timed_open(out, "size")
    index = kb.vector_store.indexes[KEY]
    vectors = kb.vector_store.sets[KEY].matrix
    rng = np.random.default_rng(1)
    picks = np.sort(rng.choice(len(vectors), queries, replace=False))
    q = np.asarray(vectors[picks], dtype=np.float32) + 0.02 * rng.standard_normal((queries, vectors.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    release_pages(vectors)  # the queries' rows: a search process does not read them (with refine sq8, none)
    started = time.perf_counter()
    first = index.search(q[:batch], k)
    first_batch_s = time.perf_counter() - started
    started = time.perf_counter()
    found = [first[1]] + [index.search(q[lo : lo + batch], k)[1] for lo in range(batch, queries, batch)]
    search_s = time.perf_counter() - started
    search_rss, parts = peak_rss_mib(), rss_parts_mib()
    exact = _exact_top_k(vectors, q[:exact_sample], k)[1]
    return {
        "load_cold_s": load_s,
        "first_batch_s": round(first_batch_s, 2),
        "mentions_per_s": round((queries - batch) / search_s),
        f"recall@{k}": round(recall_at(np.concatenate(found)[:exact_sample], exact), 4),
        "search_peak_rss_mib": round(search_rss, 1),
        **{f"search_{key}": value for key, value in parts.items()},
    }


def names_only(n: int) -> dict:
    """Load ``n`` synthetic entities and build their name index, nothing else."""
    from glinker.kb import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase()
    kb.load(entity_rows(n))
    loaded, rss_loaded = time.perf_counter(), peak_rss_mib()
    index = kb.name_index()
    return {"benchmark": "kb_scale_names", "entities": n, "load_rows_s": round(loaded - started, 1),
            "name_index_s": round(time.perf_counter() - loaded, 1), "peak_rss_after_load_mib": round(rss_loaded),
            "peak_rss_mib": round(peak_rss_mib()),
            "name_index_mib": round((sum(a.nbytes for a in index._arrays.values()) + index.keys.data.nbytes
                                     + index.keys.offsets.nbytes) / 2**20)}


def warm(out: Path) -> dict:
    _, load_s = timed_open(out, "size")
    _, full_s = timed_open(out, "full")
    return {"load_warm_s": load_s, "load_verify_full_s": full_s}


ROW = ("entities", "seeds", "index", "build_s", "disk_mib", "build_peak_rss_mib", "load_cold_s", "load_warm_s",
       "search_peak_rss_mib", "mentions_per_s", "recall@30")


def table_row(result: dict) -> str:
    params = result["index_params"]
    index = result["index"] + (f" nlist {params['nlist']} nprobe {params['nprobe']} (built for recall "
                               f"{params.get('recall_target')}: {params.get('recall')})" if "nlist" in params else "")
    cells = [f"{result['entities']:,}", result["seeds"], index] + [result.get(key, "") for key in ROW[3:]]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def run(n: int, seeds: str, args: argparse.Namespace) -> dict:
    out = args.out or CACHE / f"scale-{n}-{seeds}-{args.index}-{args.dtype}{'-sq8' * (args.refine == 'sq8')}"
    result = {"benchmark": "kb_scale", "entities": n, "seeds": seeds, "dim": args.dim, "dtype": args.dtype,
              "batch": args.batch, "k": args.k}
    for phase in ("build", "search", "warm"):
        cmd = [sys.executable, __file__, "--phase", phase, "--entities", str(n), "--seeds", seeds,
               "--dim", str(args.dim), "--index", args.index, "--dtype", args.dtype, "--queries", str(args.queries),
               "--batch", str(args.batch), "--k", str(args.k), "--exact-sample", str(args.exact_sample),
               "--recall-target", str(args.recall_target), "--refine", args.refine, "--out", str(out)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {n:,} {seeds} {phase}: {done.stdout.strip().splitlines()[-1]}", flush=True)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", default="100k", help="comma-separated sizes, e.g. 100k,1M,10M")
    parser.add_argument("--seeds", default="medic", help="comma-separated: medic, latent")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--recall-target", type=float, default=0.95)
    parser.add_argument("--refine", default="vectors", choices=["vectors", "sq8"],
                        help="ivf: re-score hits against the vectors or their 8-bit codes")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--exact-sample", type=int, default=500)
    parser.add_argument("--phase", choices=["build", "search", "warm", "names"],
                        help="names: the name index alone (the others are run by the table's runs)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(build(count(args.entities), args.out, args.dim, args.index, args.dtype, args.seeds,
                               args.recall_target, args.refine)))
    elif args.phase == "search":
        print(json.dumps(search(args.out, args.queries, args.batch, args.k, args.exact_sample)))
    elif args.phase == "warm":
        print(json.dumps(warm(args.out)))
    elif args.phase == "names":
        print(json.dumps(names_only(count(args.entities))))
    else:
        results = [run(count(n), seeds, args) for n in args.entities.split(",") for seeds in args.seeds.split(",")]
        print("| " + " | ".join(ROW) + " |\n|" + "---|" * len(ROW))
        print("\n".join(table_row(r) for r in results))


if __name__ == "__main__":
    main()
