"""The sentence encoder (MiniLM) on torch and ONNX Runtime, float32 and int8: seconds to encode MEDIC names.

Encodes the first ``--names`` MEDIC names (labels and aliases) with each of torch float32, torch int8
(``quantize: int8``), ONNX float32 (``runtime: onnx``) and ONNX int8, in rounds (one pass of each per
round, in that order, so all four see the same load), and keeps each one's best round. Prints a
table (seconds, speed-up over torch float32, largest difference of a vector from torch float32's,
and how many of each name's 30 nearest names, among those encoded, stay the same), then one JSON line.
With ``--recall``, also builds the MEDIC kb_dir with ONNX int8 and reports L2 candidate recall@30 of
the fused dict + faiss setup over it (as benchmarks/quantize_gate.py ``--sections kb`` does for torch).

    python benchmarks/onnx_encoder.py [--names 5000] [--repeat 2] [--batch-size 64] [--recall]
"""

from __future__ import annotations

import argparse
import gzip
import time

import numpy as np
import orjson
from common import CACHE, MEDIC, MINILM, require_shared_data

RUNS = {  # name -> (runtime, quantize)
    "torch float32": ("torch", "none"),
    "torch int8": ("torch", "int8"),
    "onnx float32": ("onnx", "none"),
    "onnx int8": ("onnx", "int8"),
}
NEIGHBOURS = 30


def medic_names(limit: int) -> list[str]:
    """The first ``limit`` labels and aliases of MEDIC, in file order."""
    names: list[str] = []
    with gzip.open(MEDIC, "rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            names.extend([row["label"], *row.get("aliases", [])])
            if len(names) >= limit:
                break
    return names[:limit]


def neighbour_overlap(reference: np.ndarray, vectors: np.ndarray, sample: int = 500) -> float:
    """Mean share of the ``NEIGHBOURS`` nearest names of ``sample`` names that ``vectors`` keeps."""
    queries = np.arange(0, len(reference), max(1, len(reference) // sample))[:sample]
    k = min(NEIGHBOURS, len(reference))
    expected = np.argsort(-(reference[queries] @ reference.T), axis=1)[:, :k]
    found = np.argsort(-(vectors[queries] @ vectors.T), axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(expected, found, strict=True)]))


def time_runs(names: list[str], repeat: int, batch_size: int) -> tuple[dict, dict]:
    """Best seconds of each run over ``repeat`` rounds, and each run's vectors."""
    from glinker.models.encoder import get_encoder

    encoders = {run: get_encoder(MINILM, max_length=128, runtime=runtime, quantize=mode)
                for run, (runtime, mode) in RUNS.items()}  # loaded (and converted) before any timing
    seconds = {run: float("inf") for run in RUNS}
    vectors = {}
    for _ in range(repeat):
        for run, encoder in encoders.items():
            started = time.perf_counter()
            vectors[run] = encoder.encode(names, batch_size=batch_size)
            seconds[run] = min(seconds[run], time.perf_counter() - started)
    return seconds, vectors


def onnx_int8_recall(limit: int | None) -> dict:
    """L2 recall of the fused dict + faiss setup over a MEDIC kb_dir built by the ONNX int8 encoder."""
    from candidate_recall import SETUPS, evaluate, l2_only
    from common import bc5cdr_docs

    from glinker import DAGExecutor
    from glinker.kb.build import build_kb_dir

    out = CACHE / "medic-minilm-onnx-int8"
    started = time.perf_counter()
    if not (out / "manifest.json").exists():
        build_kb_dir(MEDIC, out, MINILM, runtime="onnx", quantize="int8", progress=False)
    build_seconds = round(time.perf_counter() - started, 1)
    config = l2_only(SETUPS["fused"], abbreviations=True)
    config["nodes"][0]["config"]["embeddings"].update(runtime="onnx", quantize="int8")
    executor = DAGExecutor(config)
    executor.load_entities(out)
    return {"build_seconds": build_seconds, **evaluate(executor, bc5cdr_docs("test")[:limit], 32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recall", action="store_true", help="also L2 recall over an ONNX int8 MEDIC kb_dir")
    parser.add_argument("--limit", type=int, help="--recall: first N BC5CDR test abstracts")
    args = parser.parse_args()
    require_shared_data()
    names = medic_names(args.names)
    seconds, vectors = time_runs(names, args.repeat, args.batch_size)
    reference, base = vectors["torch float32"], seconds["torch float32"]
    results = {run: {"seconds": round(seconds[run], 2), "speedup": round(base / seconds[run], 2),
                     "max_abs_diff": float(np.abs(vectors[run] - reference).max()),
                     "neighbours_kept": round(neighbour_overlap(reference, vectors[run]), 4)} for run in RUNS}
    print(f"{len(names)} MEDIC names, batch {args.batch_size}, best of {args.repeat} rounds")
    print(f"{'run':14} {'seconds':>8} {'vs torch fp32':>13} {'max abs diff':>13} {'top-30 kept':>11}")
    for run, r in results.items():
        print(f"{run:14} {r['seconds']:>8.2f} {r['speedup']:>12.2f}x {r['max_abs_diff']:>13.2e} {r['neighbours_kept']:>11.4f}")
    summary = {"benchmark": "onnx_encoder", "names": len(names), "batch_size": args.batch_size,
               "repeat": args.repeat, "results": results}
    if args.recall:
        summary["onnx_int8_kb"] = onnx_int8_recall(args.limit)
        print("onnx int8 kb_dir:", summary["onnx_int8_kb"])
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
