"""Peak memory of one ``DAGExecutor.execute`` call over 500 and 5,000 texts, chunked and in one run.

Each (texts, chunk_texts) pair runs in its own process: build a pipeline over the cached MEDIC
kb_dir, warm it up on 8 texts, then make one ``execute`` call over N BC5CDR abstracts (repeated as
needed); the process's peak RSS comes from ``os.wait4``. ``--chunk-texts 0`` runs each call as one
chunk (the behaviour before chunks). The pipeline: ``names`` (default) is gazetteer mentions, exact +
fuzzy names and L0, no model; ``dense`` is that of ``bulk.py`` (adds dense MiniLM linking, about 20x
slower). Without ../shared/data the example texts and KB are used. Prints a table, then one JSON line.

    python benchmarks/execute_memory.py [--sizes 500,5000] [--chunk-texts 256,0] [--pipeline names|dense]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import orjson
from bulk import CONFIG, source_docs


def names_only(config: dict) -> dict:
    """``config`` without its L3 node: L0 reads the L1 mentions and L2 candidates."""
    nodes = [node for node in config["nodes"] if node["id"] != "l3"]
    nodes[-1] = {**nodes[-1], "requires": ["l1", "l2"],
                 "inputs": {k: v for k, v in nodes[-1]["inputs"].items() if k != "l3_entities"}}
    return {**config, "nodes": nodes}


PIPELINES = {"names": names_only(CONFIG), "dense": CONFIG}


def child(n: int, chunk_texts: int, pipeline: str) -> None:
    """In the measured process: one execute call over ``n`` texts; prints its figures as JSON."""
    from glinker import DAGExecutor

    docs, kb = source_docs()
    texts = [docs[i % len(docs)]["text"] for i in range(n)]
    executor = DAGExecutor(PIPELINES[pipeline], chunk_texts=chunk_texts or max(n, 1))
    executor.load_entities(str(kb))
    executor.execute({"texts": texts[:8]})
    started = time.perf_counter()
    context = executor.execute({"texts": texts})
    seconds = time.perf_counter() - started
    mentions = context.get("l0_result").stats["total_mentions"]
    print(orjson.dumps({"texts": n, "chunk_texts": chunk_texts, "mentions": mentions, "seconds": round(seconds, 1)}).decode())


def measure(n: int, chunk_texts: int, pipeline: str, env: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(n), str(chunk_texts), "--pipeline", pipeline],
                            stdout=subprocess.PIPE, env=env)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run over {n} texts (chunk_texts {chunk_texts}) failed")
    return {**orjson.loads(stdout.splitlines()[-1]), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000", help="texts per execute call (default: %(default)s)")
    parser.add_argument("--chunk-texts", default="256,0", help="chunk sizes to compare; 0 = one run (default: %(default)s)")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="names", help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the runs (default: torch's choice)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.pipeline)
        return
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    runs = []
    for chunk_texts in (int(c) for c in args.chunk_texts.split(",")):
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"execute over {n} texts, chunk_texts {chunk_texts or 'one run'} ...", file=sys.stderr)
            runs.append(measure(n, chunk_texts, args.pipeline, env))
    print(f"{'texts':>6} {'chunk_texts':>11} {'mentions':>9} {'execute s':>9} {'peak RSS MiB':>12}")
    for r in runs:
        print(f"{r['texts']:>6} {r['chunk_texts'] or 'one run':>11} {r['mentions']:>9} {r['seconds']:>9} "
              f"{r['peak_rss_mib']:>12}")
    print(orjson.dumps({"benchmark": "execute_memory", "pipeline": args.pipeline, "threads": args.threads,
                        "runs": runs}).decode())


if __name__ == "__main__":
    main()
