"""The accuracy gate of ``quantize: int8``: the same pipelines in float32 and int8 on BC5CDR against MEDIC.

Sections (``--sections``, all by default):

- ``kb``: ``glinker kb build`` of MEDIC with MiniLM, float32 and ``--quantize int8`` (build seconds),
  and L2 candidate recall@k of the fused dict + faiss setup of benchmarks/candidate_recall.py over
  each kb_dir, queries embedded by the same encoder as the kb_dir.
- ``medic``: configs/medic.yaml (gazetteer L1, dict + faiss L2, dense L3), as benchmarks/accuracy.py
  runs it, with the MiniLM of L2 and L3 in int8 over the int8 kb_dir: gold-mention accuracy@1 and
  end-to-end F1.
- ``ner``: the trained GLiNER of ``--ner`` (a snapshot copied at start, since a training may still be
  writing it) as L1, as benchmarks/train.py runs it, in int8: L1 span F1 and link F1.

Modes (``--modes``): ``int8`` (torch dynamic quantization) and ``onnx-int8`` (ONNX Runtime with int8
weights: the sentence encoder only, so the ``ner`` section leaves it out), each against float32
(``none``). A metric that a mode loses by more than ``--max-loss`` points (0.5) fails the gate. Prints
a table, then one JSON line.

    python benchmarks/quantize_gate.py [--sections kb,medic,ner] [--modes none,int8,onnx-int8] [--ner runs/ner/model] [--limit N]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import orjson
import yaml
from common import BC5CDR, CACHE, MEDIC, MINILM, ROOT, bc5cdr_docs, medic_kb_dir, require_shared_data

# how each mode runs a model: the options of a model layer (and of build_kb_dir)
MODES = {"none": {"quantize": "none"}, "int8": {"quantize": "int8"},
         "onnx-int8": {"quantize": "int8", "runtime": "onnx"}}


def kb_dir(mode: str) -> Path:
    """The MEDIC kb_dir embedded by MiniLM in ``mode`` (cached like common.medic_kb_dir)."""
    if mode == "none":
        return medic_kb_dir()
    out = CACHE / f"medic-minilm-{mode}"
    if not (out / "manifest.json").exists():
        build(mode, out)
    return out


def build(mode: str, out: Path) -> float:
    """Seconds ``glinker kb build`` of MEDIC in ``mode`` took (build_kb_dir, as the CLI runs it)."""
    from glinker.kb.build import build_kb_dir

    started = time.perf_counter()
    build_kb_dir(MEDIC, out, MINILM, progress=False, **MODES[mode])
    return round(time.perf_counter() - started, 1)


def kb_section(args) -> dict:
    """Build seconds of each kb_dir (built afresh) and the fused L2 recall@k over it."""
    from candidate_recall import SETUPS, evaluate, l2_only

    from glinker import DAGExecutor

    docs = bc5cdr_docs(args.split)[: args.limit]
    out = {}
    for mode in args.modes:
        cached = mode != "none" and not (CACHE / f"medic-minilm-{mode}" / "manifest.json").exists()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # the cached kb_dir is built here when missing
            build_seconds = build(mode, CACHE / f"medic-minilm-{mode}" if cached else Path(tmp) / "kb")
        config = l2_only(SETUPS["fused"], abbreviations=True)
        config["nodes"][0]["config"]["embeddings"].update(MODES[mode])
        executor = DAGExecutor(config)
        executor.load_entities(kb_dir(mode))
        out[mode] = {"build_seconds": build_seconds, **evaluate(executor, docs, 32)}
    return out


def with_quantize(config: dict, mode: str, nodes: tuple[str, ...]) -> dict:
    """``config`` with every model of ``nodes`` run as ``mode`` says (L2: its embeddings)."""
    for node in config["nodes"]:
        if node["id"] in nodes:
            target = node["config"].get("embeddings") if node["id"] == "l2" else node["config"]
            target.update(MODES[mode])
    return config


def evaluate_config(args, config: dict, kb: Path, modes: tuple[str, ...]) -> dict:
    from glinker.jobs.evaluate import evaluate

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(yaml.safe_dump(config))
        for mode in modes:
            report = evaluate(path, kb, BC5CDR, split=args.split, gold_mentions=mode == "gold_mentions",
                              batch_size=32, limit=args.limit)
            results[mode] = {k: report[k] for k in ("precision", "recall", "f1", "accuracy@1", "docs_per_second")
                             if k in report}
            results[mode]["spans_f1"] = report["spans"]["f1"]
    return results


def medic_section(args) -> dict:
    out = {}
    for mode in args.modes:
        config = with_quantize(yaml.safe_load((ROOT / "configs" / "medic.yaml").read_text()), mode, ("l2", "l3"))
        out[mode] = evaluate_config(args, config, kb_dir(mode), ("gold_mentions", "end_to_end"))
    return out


def ner_section(args) -> dict:
    from train import pipeline

    snapshot = Path(tempfile.mkdtemp(prefix="ner-snapshot-"))
    shutil.copytree(args.ner, snapshot / "model")
    summary = Path(args.ner).parent / "summary.json"
    out = {"model": args.ner, "model_mtime": time.ctime(Path(args.ner).stat().st_mtime),
           "best": orjson.loads(summary.read_bytes()).get("best") if summary.exists() else None}
    for mode in (m for m in args.modes if "runtime" not in MODES[m]):  # GLiNER runs on torch only
        config = with_quantize(pipeline(None, str(snapshot / "model"), args.ner_threshold), mode, ("l1",))
        out[mode] = evaluate_config(args, config, kb_dir("none"), ("end_to_end",))
    shutil.rmtree(snapshot)
    return out


# (section, metric path, name) of the gated metrics
GATED = [
    ("kb", ("recall@30",), "L2 recall@30 (kb build)"),
    ("medic", ("gold_mentions", "accuracy@1"), "gold-mention acc@1 (medic.yaml)"),
    ("medic", ("end_to_end", "f1"), "end-to-end F1 (medic.yaml)"),
    ("ner", ("end_to_end", "spans_f1"), "L1 GLiNER span F1"),
    ("ner", ("end_to_end", "f1"), "link F1 with GLiNER L1"),
]


def gate(results: dict, max_loss: float) -> list[dict]:
    """One row per gated metric and cheaper mode: its value, float32's, the points lost, pass or fail."""
    rows = []
    for section, path, name in GATED:
        for mode in (m for m in results.get(section, {}) if m in MODES and m != "none"):
            fp32, value = results[section]["none"], results[section][mode]
            for key in path:
                fp32, value = fp32[key], value[key]
            loss = round(100 * (fp32 - value), 2)
            rows.append({"metric": name, "mode": mode, "fp32": fp32, "value": value, "loss_points": loss,
                         "passes": loss <= max_loss})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="kb,medic,ner")
    parser.add_argument("--modes", default="none,int8", help=f"of {', '.join(MODES)}; none is always run")
    parser.add_argument("--ner", default=str(ROOT / "runs" / "ner" / "model"), help="trained GLiNER folder")
    parser.add_argument("--ner-threshold", type=float, default=0.3)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="first N documents only")
    parser.add_argument("--max-loss", type=float, default=0.5, help="points a mode may lose on a gated metric")
    args = parser.parse_args()
    args.modes = ["none", *(m for m in args.modes.split(",") if m != "none")]
    if unknown := [m for m in args.modes if m not in MODES]:
        parser.error(f"unknown mode {unknown[0]!r}; expected one of {', '.join(MODES)}")
    require_shared_data()
    sections = {"kb": kb_section, "medic": medic_section, "ner": ner_section}
    results = {}
    for name in args.sections.split(","):
        started = time.perf_counter()
        results[name] = sections[name](args)
        print(f"section {name}: {time.perf_counter() - started:.0f} s {orjson.dumps(results[name]).decode()}", flush=True)
    rows = gate(results, args.max_loss)
    print(f"BC5CDR {args.split}{f' (first {args.limit} documents)' if args.limit else ''}, MEDIC KB; "
          f"a mode fails where it loses more than {args.max_loss} points")
    print(f"{'metric':34s} {'mode':>9s} {'fp32':>7s} {'mode':>7s} {'loss':>6s}  gate")
    for row in rows:
        print(f"{row['metric']:34s} {row['mode']:>9s} {row['fp32']:7.4f} {row['value']:7.4f} {row['loss_points']:6.2f}  "
              f"{'pass' if row['passes'] else 'FAIL'}")
    if "kb" in results:
        print("kb build seconds: " + ", ".join(f"{m} {r['build_seconds']}" for m, r in results["kb"].items()))
    print(orjson.dumps({"benchmark": "quantize_gate", "split": args.split, "limit": args.limit,
                        "gate": rows, "results": results}).decode())


if __name__ == "__main__":
    main()
