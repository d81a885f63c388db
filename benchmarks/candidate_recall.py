"""Candidate recall of L2 on BC5CDR (gold disease mentions) against the MEDIC KB.

For each retriever setup (dict only, faiss only, fused) the gold mentions of the chosen split are
given as ``$input.entities`` and recall@k counts a mention as found when its gold id (any id of a
composite mention) is among the first k candidates. NIL mentions are left out (their id is not in
the KB). Prints a table, then one JSON line.

    python benchmarks/candidate_recall.py [--split test] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import orjson
from common import MINILM, bc5cdr_docs, medic_kb_dir, require_shared_data

KS = (1, 5, 10, 30)
SETUPS = {
    "dict": [{"type": "dict", "priority": 1}],
    "faiss": [{"type": "faiss", "priority": 0, "top_k": 30}],
    "fused": [{"type": "dict", "priority": 1}, {"type": "faiss", "priority": 0, "top_k": 30}],
}


def l2_only(layers: list[dict], abbreviations: bool, hierarchy: bool = True) -> dict:
    return {"name": "l2", "nodes": [{
        "id": "l2", "processor": "l2_chain",
        "inputs": {"mentions": {"source": "$input", "fields": "entities"}, "texts": {"source": "$input", "fields": "texts"}},
        "output": {"key": "l2_result"},
        "config": {"layers": layers, "max_candidates": 30, "abbreviations": abbreviations,
                   "hierarchy": {"field": "parent_ids"} if hierarchy else None,
                   "embeddings": {"enabled": True, "model_name": MINILM}},
    }]}


def evaluate(executor, docs: list[dict], batch: int) -> dict:
    hits = dict.fromkeys(KS, 0)
    total = 0
    seconds = 0.0
    for lo in range(0, len(docs), batch):
        part = docs[lo : lo + batch]
        gold = [[m for m in d["mentions"] if m["entity_id"] != "NIL"] for d in part]
        started = time.perf_counter()
        ctx = executor.execute({
            "texts": [d["text"] for d in part],
            "entities": [[{"text": m["text"], "start": m["start"], "end": m["end"]} for m in g] for g in gold],
        })
        seconds += time.perf_counter() - started
        for g_doc, groups in zip(gold, ctx.get("l2_result").candidates, strict=True):
            for m, group in zip(g_doc, groups, strict=True):
                ids = [c.entity_id for c in group.candidates]
                wanted = set(m.get("entity_ids") or [m["entity_id"]])
                rank = next((i for i, e in enumerate(ids) if e in wanted), None)
                total += 1
                for k in KS:
                    hits[k] += rank is not None and rank < k
    return {"mentions": total, **{f"recall@{k}": round(hits[k] / total, 4) for k in KS},
            "mentions_per_s": round(total / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--no-abbreviations", action="store_true")
    parser.add_argument("--no-hierarchy", action="store_true", help="do not add shared MEDIC ancestors (parent_ids)")
    args = parser.parse_args()
    require_shared_data()
    from glinker import DAGExecutor

    kb_dir = medic_kb_dir()
    docs = bc5cdr_docs(args.split)
    results = {}
    for name in args.setups.split(","):
        executor = DAGExecutor(l2_only(SETUPS[name], not args.no_abbreviations, not args.no_hierarchy))
        executor.load_entities(kb_dir)
        executor.execute({"texts": ["warm up"], "entities": [[{"text": "warm", "start": 0, "end": 4}]]})
        results[name] = evaluate(executor, docs, args.batch)
    header = f"{'setup':8} {'mentions':>8} " + " ".join(f"{'R@' + str(k):>7}" for k in KS) + f" {'mentions/s':>11}"
    print(f"BC5CDR {args.split}, gold mentions (NIL excluded), MEDIC KB, {MINILM}")
    print(header)
    for name, r in results.items():
        print(f"{name:8} {r['mentions']:>8} " + " ".join(f"{r[f'recall@{k}']:>7.4f}" for k in KS) + f" {r['mentions_per_s']:>11.1f}")
    print(orjson.dumps({"benchmark": "candidate_recall", "split": args.split, "results": results}).decode())


if __name__ == "__main__":
    main()
