"""The ``glinker`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from .errors import GlinkerError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _find(path: str) -> Path:
    """A path as given, or relative to the project checkout (for the bundled configs and data)."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else PROJECT_ROOT / p


def cmd_demo(args: argparse.Namespace) -> int:
    from .dag import DAGExecutor

    executor = DAGExecutor(_find(args.config), verbose=args.verbose)
    report = executor.load_entities(_find(args.entities))
    rows = [orjson.loads(line) for line in _find(args.texts).read_bytes().splitlines() if line.strip()]
    texts = [row["text"] for row in rows]
    print(f"loaded {report.loaded} entities; linking {len(texts)} texts with {args.config}", file=sys.stderr)
    context = executor.execute({"texts": texts})
    for row, text, records in zip(rows, texts, context.get("l0_result").entities, strict=True):
        print(f"\n[{row.get('id', '')}] {text}")
        for e in records:
            if e.is_linked:
                link = e.linked_entity
                print(f"  {e.mention_start:>4}-{e.mention_end:<4} {e.mention_text!r:32} -> {link.label} ({link.entity_id}) {link.score:.2f}")
            elif args.show_unlinked:
                print(f"  {e.mention_start:>4}-{e.mention_end:<4} {e.mention_text!r:32} -> (unlinked)")
    return 0


def cmd_kb_build(args: argparse.Namespace) -> int:
    from .kb.build import build_kb_dir

    manifest = build_kb_dir(
        args.entities, args.out, args.encoder, template=args.template, index_type=args.index,
        batch_size=args.batch_size, device=args.device, dtype=args.dtype, kinds=tuple(args.vectors.split(",")),
        on_error="skip" if args.rejects else "raise", rejects_path=args.rejects, progress=not args.quiet,
    )
    summary = {k: manifest[k] for k in ("count", "names", "encoder", "template", "dim", "dtype", "build_seconds")}
    summary["index"] = manifest["index"] and {k: manifest["index"][k] for k in ("type", "ntotal", "params")}
    summary["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    summary["load_report"] = manifest["load_report"]
    print(orjson.dumps(summary).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glinker", description="Entity linking: texts in, KB-linked mentions out.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="link the bundled example texts against the bundled example KB")
    demo.add_argument("--config", default="configs/default.yaml", help="pipeline YAML (default: %(default)s)")
    demo.add_argument("--entities", default="data/entities.jsonl", help="entity JSONL (default: %(default)s)")
    demo.add_argument("--texts", default="data/texts.jsonl", help="JSONL with a 'text' field (default: %(default)s)")
    demo.add_argument("--show-unlinked", action="store_true", help="also print mentions left unlinked")
    demo.add_argument("--verbose", action="store_true")
    demo.set_defaults(func=cmd_demo)

    kb = sub.add_parser("kb", help="knowledge base tools").add_subparsers(dest="kb_command", required=True)
    build = kb.add_parser("build", help="embed a KB once and write a kb_dir (vectors, FAISS index, manifest)")
    build.add_argument("--entities", required=True, help="entity JSONL (.jsonl or .jsonl.gz)")
    build.add_argument("--out", required=True, help="kb_dir to write (replaced atomically if it exists)")
    build.add_argument("--encoder", default="sentence-transformers/all-MiniLM-L6-v2", help="sentence encoder (default: %(default)s)")
    build.add_argument("--template", default="{label}: {description}", help="entity text template (default: %(default)r)")
    build.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"],
                       help="FAISS index over name vectors; auto: flat up to 250k vectors, ivf above")
    build.add_argument("--vectors", default="names,entities", help="which vectors: names, entities or both (default: %(default)s)")
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--device", default="cpu", help="cpu or cuda")
    build.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="stored vector precision")
    build.add_argument("--rejects", help="skip bad rows and write them here (default: stop at the first bad row)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=cmd_kb_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except GlinkerError as exc:
        print(f"glinker: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
