"""What the trained models give: the issue-12 table on BC5CDR against MEDIC (train/dev to train, test to report).

Each model folder is one `glinker train` output (OUT/model). The script swaps it into
configs/medic.yaml and runs the same evaluation as benchmarks/accuracy.py:

- ``--retriever DIR``: the encoder of the L2 faiss layer and the L3 dense backend (a kb_dir is built
  with it once and cached). Prints gold-mention acc@1 and recall@k, and end-to-end P/R/F1.
- ``--ner DIR``: GLiNER as L1 (label ``disease``) instead of the gazetteer. Prints span P/R/F1, link
  P/R/F1 and L1 docs/s; with ``--retriever`` too, both trained models run together.
  ``--ner-merge first|longest``: the gazetteer's mentions and GLiNER's merged (``l1_merge``).
- ``--linker DIR``: the trained linker as L3 instead of the dense backend, with ``--linker-weight`` of
  the L2 retrieval score mixed in: a cross-encoder (the template and context of
  configs/train/bc5cdr_linker.yaml), or with ``--linker-backend gliner`` a GLiNER linker
  (configs/train/bc5cdr_gliner_linker.yaml).
- ``--priors DIR``: an L2 ``priors`` layer proposes, and L3 mixes in, the mention priors of ``glinker train`` task ``priors`` (OUT/model;
  configs/train/bc5cdr_priors.yaml counts BC5CDR train and dev; count train alone to tune on dev).
- ``--l3-threshold T``: the L3 threshold, whatever the backend (default: configs/medic.yaml's 0.5); tune it
  on dev with the best-F1 threshold the report prints, then use it on test.
- ``--train``: first runs ``glinker train`` with configs/train/*.yaml (long: see README).

    python benchmarks/train.py --retriever runs/retriever/model --ner runs/ner/model [--split test]
    python benchmarks/train.py --linker runs/linker/model --linker-weight 0.5
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import yaml
from common import BC5CDR, MINILM, ROOT, medic_kb_dir, require_shared_data


def kb_dir_for(encoder: str | None) -> Path:
    """The MEDIC kb_dir embedded with ``encoder`` (MiniLM when None), built once and cached."""
    if encoder is None:
        return medic_kb_dir()
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(encoder).glob("*.safetensors")))).hexdigest()
    return medic_kb_dir(encoder=encoder, name=f"medic-{key[:12]}")


def merged_l1(config: dict, gliner: dict, overlaps: str) -> None:
    """L1 becomes the gazetteer's mentions (first) merged with GLiNER's (second) by ``overlaps``."""
    gazetteer = config["nodes"][0]
    texts = gazetteer["inputs"]["texts"]
    ner_node = {"id": "l1_ner", "processor": "l1_gliner", "inputs": {"texts": dict(texts)},
                "output": {"key": "l1_ner_result"}, "config": gliner}
    merge = {"id": "l1", "processor": "l1_merge", "requires": ["l1_dict", "l1_ner"],
             "inputs": {"first": {"source": "l1_dict_result", "fields": "entities"},
                        "second": {"source": "l1_ner_result", "fields": "entities"}},
             "output": {"key": "l1_result"}, "config": {"overlaps": overlaps}}
    gazetteer.update(id="l1_dict", output={"key": "l1_dict_result"})
    config["nodes"][:1] = [gazetteer, ner_node, merge]


def pipeline(encoder: str | None, ner: str | None, threshold: float, linker: dict | None = None,
             merge: str | None = None, l3_threshold: float | None = None, priors: str | None = None) -> dict:
    """configs/medic.yaml with the trained encoder, GLiNER L1 (alone or merged with the gazetteer's
    mentions) and/or a trained linker (cross-encoder or GLiNER) as L3 swapped in."""
    config = copy.deepcopy(yaml.safe_load((ROOT / "configs" / "medic.yaml").read_text()))
    nodes = {node["id"]: node for node in config["nodes"]}
    if encoder is not None:
        nodes["l2"]["config"]["embeddings"]["model_name"] = encoder
        nodes["l3"]["config"]["model_name"] = encoder
    gliner = {"model": ner, "labels": ["disease"], "threshold": threshold, "flat_ner": True}
    if ner is not None and merge is not None:
        merged_l1(config, gliner, merge)
    elif ner is not None:
        nodes["l1"]["processor"], nodes["l1"]["config"] = "l1_gliner", gliner
    if linker is not None and linker["backend"] == "cross_encoder":
        nodes["l3"]["config"] = {"context_chars": 100, "max_length": 64, "batch_size": 64, **linker}
    elif linker is not None:  # a GLiNER linker reads the whole text; the schema template of L2 renders its labels
        nodes["l3"]["config"] = {"batch_size": 8, **linker}
    if l3_threshold is not None:
        nodes["l3"]["config"]["threshold"] = l3_threshold
    if priors is not None:  # L2 proposes the entities of the surface's annotations; L3 mixes their shares in
        path = str(Path(priors).resolve())
        nodes["l2"]["config"]["layers"].append({"type": "priors", "priority": 2, "priors": path, "top_k": 5})
        nodes["l3"]["config"]["priors"] = path
    return config


def run(args: argparse.Namespace) -> dict:
    from glinker.jobs.evaluate import evaluate, format_report

    kb_dir = kb_dir_for(args.retriever)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        linker = {"model_name": args.linker, "backend": args.linker_backend,
                  "retrieval_weight": args.linker_weight} if args.linker else None
        config = pipeline(args.retriever, args.ner, args.threshold, linker, args.ner_merge, args.l3_threshold,
                          args.priors)
        path.write_text(yaml.safe_dump(config))
        modes = ["end_to_end"] if args.ner else ["gold_mentions", "end_to_end"]
        for mode in modes:
            report = evaluate(path, kb_dir, BC5CDR, split=args.split, gold_mentions=mode == "gold_mentions",
                              batch_size=args.batch_size, limit=args.limit)
            print(format_report(report))
            keep = ("precision", "recall", "f1", "accuracy@1", "recall@k", "docs_per_second")
            results[mode] = {k: report[k] for k in keep if k in report}
            results[mode]["spans"] = report["spans"]
    return results


def train_all() -> None:
    for name, out in (("medic_retriever_bc5cdr", "retriever"), ("bc5cdr_ner", "ner")):
        command = [sys.executable, "-m", "glinker.cli", "train", f"configs/train/{name}.yaml", "--out", f"runs/{out}"]
        resume = ["--resume"] if (ROOT / "runs" / out / "train_state.json").exists() else []
        subprocess.run(command + resume, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retriever", help="trained encoder folder (default: the untrained MiniLM)")
    parser.add_argument("--ner", help="trained GLiNER folder (default: the gazetteer of configs/medic.yaml)")
    parser.add_argument("--threshold", type=float, default=0.5, help="GLiNER L1 threshold")
    parser.add_argument("--ner-merge", choices=["first", "longest", "all"],
                        help="with --ner: L1 is the gazetteer's mentions merged with GLiNER's (l1_merge overlaps)")
    parser.add_argument("--linker", help="trained linker folder for L3 (default: the dense backend)")
    parser.add_argument("--linker-backend", choices=["cross_encoder", "gliner"], default="cross_encoder",
                        help="what --linker is: a glinker train task 'linker' output of that model.backend")
    parser.add_argument("--linker-weight", type=float, default=0.0, help="L3 retrieval_weight with --linker")
    parser.add_argument("--l3-threshold", type=float, help="L3 threshold (default: configs/medic.yaml's)")
    parser.add_argument("--priors", help="L3 mention priors: a glinker train task 'priors' output folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train", action="store_true", help="train first with configs/train/*.yaml into runs/")
    args = parser.parse_args()
    require_shared_data()
    if args.train:
        train_all()
        args.retriever, args.ner = args.retriever or "runs/retriever/model", args.ner or "runs/ner/model"
    results = run(args)
    print(orjson.dumps({"benchmark": "train", "retriever": args.retriever or MINILM, "ner": args.ner,
                        "ner_merge": args.ner_merge,
                        "linker": args.linker and {"model": args.linker, "backend": args.linker_backend,
                                                   "retrieval_weight": args.linker_weight},
                        "l3_threshold": args.l3_threshold, "priors": args.priors,
                        "split": args.split, "results": results}).decode())


if __name__ == "__main__":
    main()
