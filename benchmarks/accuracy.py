"""Linking accuracy on BC5CDR (disease mentions) against the MEDIC KB, fully offline.

Two runs of the same pipeline (default: configs/medic.yaml = configs/default.yaml with MEDIC's
parent hierarchy): with gold mentions given as input (accuracy@1 and candidate recall@k), and end
to end with the gazetteer finding mentions (precision/recall/F1, exact span + correct entity;
composite mentions count on any of their ids; NIL rules in glinker/jobs/evaluate.py).

    python benchmarks/accuracy.py [--config configs/medic.yaml] [--split test] [--limit N]
"""

from __future__ import annotations

import argparse

import orjson
from common import BC5CDR, ROOT, medic_kb_dir, require_shared_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "medic.yaml"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--modes", default="gold_mentions,end_to_end")
    args = parser.parse_args()
    require_shared_data()
    from glinker.jobs.evaluate import evaluate, format_report

    kb_dir = medic_kb_dir()
    results = {}
    for mode in args.modes.split(","):
        report = evaluate(args.config, kb_dir, BC5CDR, split=args.split, gold_mentions=mode == "gold_mentions",
                          batch_size=args.batch_size, limit=args.limit)
        print(format_report(report))
        results[mode] = {k: report[k] for k in ("precision", "recall", "f1", "accuracy@1", "nil_accuracy",
                                                "docs_per_second") if k in report}
        if "recall@k" in report:
            results[mode]["recall@k"] = report["recall@k"]
        results[mode]["spans_f1"] = report["spans"]["f1"]
    print(orjson.dumps({"benchmark": "accuracy", "config": args.config, "split": args.split, "results": results}).decode())


if __name__ == "__main__":
    main()
