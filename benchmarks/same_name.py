"""Many entities sharing one name: link time against the number N of entities labelled "Paris".

    python benchmarks/same_name.py [--sizes 1000,100000,1000000] [--others 1000]

Builds, for each N, a KB of N entities labelled "Paris" (popularity 0-6, so exact hits tie in
groups) plus ``--others`` entities with names of their own, loads it into the model-free pipeline
(KB gazetteer L1 -> names-only L2 -> L0, max_candidates 30) and times linking 8 and 64 texts that
each mention Paris twice. The first call, which builds the name index, is timed apart. With the
exact hits cut to max_candidates before any Python work, the 8- and 64-text times should not
grow with N beyond the numpy passes over the hits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common  # sets the offline environment
import orjson

from glinker import DAGExecutor

sys.path.insert(0, str(common.ROOT))
from tests.conftest import model_free_config  # noqa: E402  (the gazetteer -> names-only L2 -> L0 pipeline)

TEXT = "Paris in spring: {other} is far, and the Paris metro was crowded."


def write_kb(path: Path, same: int, others: int) -> None:
    with open(path, "wb") as handle:
        for i in range(same):
            handle.write(orjson.dumps({"entity_id": f"P{i:07d}", "label": "Paris", "popularity": i % 7}) + b"\n")
        for i in range(others):
            handle.write(orjson.dumps({"entity_id": f"O{i:07d}", "label": f"Town{i}", "popularity": 1}) + b"\n")


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(same: int, others: int, folder: Path) -> dict[str, float]:
    path = folder / f"kb-{same}.jsonl"
    write_kb(path, same, others)
    executor = DAGExecutor(model_free_config())
    row = {"N": same, "load_s": timed(lambda: executor.load_entities(path))}
    texts = [TEXT.format(other=f"Town{i % max(others, 1)}") for i in range(64)]
    row["first_call_s"] = timed(lambda: executor.execute({"texts": texts[:1]}))
    for n in (8, 64):
        row[f"{n}_texts_s"] = timed(lambda n=n: executor.execute({"texts": texts[:n]}))
    result = executor.execute({"texts": texts[:1]}).get("l2_result").candidates[0][0]
    assert result.mention.text == "Paris" and len(result.candidates) == 30
    path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated numbers of 'Paris' entities")
    parser.add_argument("--others", type=int, default=1000, help="entities with names of their own")
    args = parser.parse_args()
    print(f"{'N':>9} {'load s':>8} {'1st call s':>10} {'8 texts s':>10} {'64 texts s':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for same in (int(s) for s in args.sizes.split(",")):
            r = measure(same, args.others, Path(folder))
            print(f"{r['N']:>9,} {r['load_s']:>8.2f} {r['first_call_s']:>10.2f} {r['8_texts_s']:>10.3f} "
                  f"{r['64_texts_s']:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
