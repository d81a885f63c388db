"""Bulk linking at two input sizes: throughput stays the same and memory stays flat.

Inputs of N documents are synthesised from the BC5CDR abstracts (every pass over the 1,500 abstracts
is a fresh shuffle, ids made unique), so per-document cost is the same at every size. Each size runs
``glinker link`` in its own subprocess; its peak RSS comes from ``os.wait4``. Without ../shared/data
the example texts and KB are used instead. Prints a table, then one JSON line.

    python benchmarks/bulk.py [--sizes 2000,20000] [--batch-size 64] [--threads 1] [--config PATH --kb PATH]

The default pipeline: gazetteer mentions, exact + fuzzy names, dense MiniLM linking of each mention
in a 50-character window against "{label}: {description}" vectors of the cached MEDIC kb_dir.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from common import BC5CDR, MEDIC, MINILM, ROOT, bc5cdr_docs, medic_kb_dir

CONFIG = {
    "name": "bulk-benchmark",
    "nodes": [
        {"id": "l1", "processor": "l1_dictionary", "inputs": {"texts": {"source": "$input", "fields": "texts"}},
         "output": {"key": "l1_result"}},
        {"id": "l2", "processor": "l2_chain", "requires": ["l1"],
         "inputs": {"mentions": {"source": "l1_result", "fields": "entities"},
                    "texts": {"source": "$input", "fields": "texts"}},
         "output": {"key": "l2_result"}, "config": {"max_candidates": 10, "layers": [{"type": "dict"}]}},
        {"id": "l3", "processor": "l3_batch", "requires": ["l2"],
         "inputs": {"texts": {"source": "$input", "fields": "texts"},
                    "candidates": {"source": "l2_result", "fields": "candidates"}},
         "output": {"key": "l3_result"}, "schema": {"template": "{label}: {description}"},
         "config": {"model_name": MINILM, "backend": "dense", "threshold": 0.6, "context_chars": 50,
                    "max_length": 64}},
        {"id": "l0", "processor": "l0_aggregator", "requires": ["l1", "l2", "l3"],
         "inputs": {"l1_entities": {"source": "l1_result", "fields": "entities"},
                    "l2_candidates": {"source": "l2_result", "fields": "candidates"},
                    "l3_entities": {"source": "l3_result", "fields": "entities"}},
         "output": {"key": "l0_result"}},
    ],
}


def source_docs() -> tuple[list[dict], Path]:
    """Abstracts and the KB to link them against (shared data, else the bundled example)."""
    if BC5CDR.exists() and MEDIC.exists():
        return [{"id": d["doc_id"], "text": d["text"]} for d in bc5cdr_docs("all")], medic_kb_dir()
    print(f"shared data not found under {BC5CDR.parents[1]}: using the example texts and KB", file=sys.stderr)
    rows = [orjson.loads(line) for line in (ROOT / "data" / "texts.jsonl").read_bytes().splitlines() if line.strip()]
    return rows, ROOT / "data" / "entities.jsonl"


def synthesise(docs: list[dict], n: int, path: Path, seed: int = 13) -> None:
    """Write ``n`` documents: successive shuffled passes over ``docs``, streamed to ``path``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        written, rounds = 0, 0
        while written < n:
            order = list(range(len(docs)))
            rng.shuffle(order)
            for i in order[: n - written]:
                out.write(orjson.dumps({"id": f"{docs[i]['id']}#{rounds}", "text": docs[i]["text"]}) + b"\n")
            written += min(len(order), n - written)
            rounds += 1


def run(config: Path, kb: Path, data: Path, output: Path, batch_size: int, env: dict) -> dict:
    """One ``glinker link`` in a subprocess; its summary plus wall time and peak RSS."""
    cmd = [sys.executable, "-m", "glinker.cli", "link", "--config", str(config), "--kb", str(kb), "--input", str(data),
           "--output", str(output), "--batch-size", str(batch_size), "--quiet", "--overwrite"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"glinker link failed: {' '.join(cmd)}")
    result = orjson.loads(stdout)
    result["wall_seconds"] = round(time.perf_counter() - started, 3)
    result["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
    link_seconds = result["seconds"] - result["load_seconds"]
    result["docs_per_second"] = round(result["docs"] / link_seconds, 2)
    result["mentions_per_second"] = round(result["mentions"] / link_seconds, 2)
    result["input_mib"] = round(data.stat().st_size / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="documents per run (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the job (default: torch's choice)")
    parser.add_argument("--config", type=Path, help="pipeline YAML (default: the pipeline described above)")
    parser.add_argument("--kb", type=Path, help="kb_dir (default: the cached MEDIC kb_dir)")
    args = parser.parse_args()
    docs, kb = source_docs()
    kb = args.kb or kb
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    runs = []
    with tempfile.TemporaryDirectory(prefix="glinker-bulk-") as tmp:
        tmp = Path(tmp)
        config = args.config
        if config is None:
            config = tmp / "bulk.yaml"
            config.write_bytes(orjson.dumps(CONFIG))  # JSON is YAML
        for n in (int(s) for s in args.sizes.split(",")):
            data = tmp / f"docs-{n}.jsonl"
            synthesise(docs, n, data)
            print(f"linking {n} documents ...", file=sys.stderr)
            runs.append(run(config, kb, data, tmp / f"linked-{n}.jsonl", args.batch_size, env))
            data.unlink()
    header = f"{'docs':>8} {'input MiB':>9} {'mentions':>9} {'load s':>7} {'total s':>8} {'docs/s':>8} {'mentions/s':>10} {'peak RSS MiB':>12}"
    print(header)
    for r in runs:
        print(f"{r['docs']:>8} {r['input_mib']:>9} {r['mentions']:>9} {r['load_seconds']:>7.1f} {r['seconds']:>8.1f} "
              f"{r['docs_per_second']:>8.2f} {r['mentions_per_second']:>10.1f} {r['peak_rss_mib']:>12.1f}")
    keys = ("docs", "mentions", "linked", "load_seconds", "seconds", "docs_per_second", "mentions_per_second",
            "peak_rss_mib", "input_mib", "layer_seconds")
    print(orjson.dumps({
        "benchmark": "bulk", "kb": str(kb), "batch_size": args.batch_size, "threads": args.threads,
        "runs": [{k: r[k] for k in keys} for r in runs],
        "rss_ratio_last_vs_first": round(runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"], 3),
        "throughput_ratio_last_vs_first": round(runs[-1]["docs_per_second"] / runs[0]["docs_per_second"], 3),
    }).decode())


if __name__ == "__main__":
    main()
