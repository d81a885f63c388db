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
