"""The ``glinker`` command.

Each subcommand is added by its own ``add_*`` function (options and help) and run by its ``cmd_*``
function. Paths are taken as typed, relative to the current folder; the files bundled with glinker
(the example configs and data) are named with the ``glinker:`` prefix, e.g. ``glinker:configs/default.yaml``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from .errors import GlinkerError
from .inputs import DEFAULT_MAX_TEXT_CHARS
from .serve.command import add_serve, positive
from .train.command import add_train

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = "glinker:"
VECTOR_KINDS = ("names", "entities")


def user_path(value: str) -> Path:
    """``value`` as typed (relative to the current folder), or a bundled file for ``glinker:NAME``."""
    if not value.startswith(BUNDLED):
        return Path(value)
    path = PROJECT_ROOT / value[len(BUNDLED):]
    if not path.exists():
        raise GlinkerError(f"{value}: no such file bundled with glinker (glinker --list-configs shows the configs)")
    return path


class ListConfigs(argparse.Action):
    """``--list-configs``: print the bundled pipeline configs as ``glinker:`` paths and exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        for path in sorted((PROJECT_ROOT / "configs").glob("*.yaml")):
            print(f"{BUNDLED}{path.relative_to(PROJECT_ROOT).as_posix()}")
        parser.exit()


def cmd_demo(args: argparse.Namespace) -> int:
    from .dag import DAGExecutor

    executor = DAGExecutor(user_path(args.config), verbose=args.verbose)
    report = executor.load_entities(user_path(args.entities))
    rows = [orjson.loads(line) for line in user_path(args.texts).read_bytes().splitlines() if line.strip()]
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


def vector_kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in value.split(","))
    unknown = [kind for kind in kinds if kind not in VECTOR_KINDS]
    if unknown or not kinds:
        raise GlinkerError(f"--vectors {value!r}: expected names, entities or names,entities")
    return kinds


def check_kb_out(out: Path) -> None:
    """Refuse, before anything is embedded, an --out that a kb_dir cannot replace."""
    if out.exists() and not (out / "manifest.json").is_file():
        raise GlinkerError(f"--out {out} exists and is not a kb_dir (no manifest.json); refusing to replace it")
    if not out.parent.is_dir():
        raise GlinkerError(f"--out {out}: the folder {out.parent} does not exist")


def cmd_kb_build(args: argparse.Namespace) -> int:
    from .kb.build import build_kb_dir
    from .kb.storage import remove_stale_builds
    from .locks import exclusive

    out, kinds = Path(args.out), vector_kinds(args.vectors)
    check_kb_out(out)
    with exclusive(out, what="glinker kb build"):
        remove_stale_builds(out)
        manifest = build_kb_dir(
            args.entities, out, args.encoder, template=args.template, index_type=args.index,
            batch_size=args.batch_size, device=args.device, dtype=args.dtype, kinds=kinds, quantize=args.quantize,
            runtime=args.runtime, recall_target=args.recall_target, search=search_overrides(args), refine=args.refine,
            on_error="skip" if args.rejects else "raise", rejects_path=args.rejects, progress=not args.quiet,
        )
    summary = {k: manifest[k] for k in ("count", "names", "encoder", "template", "dim", "dtype", "build_seconds")}
    summary["index"] = manifest["index"] and {k: manifest["index"][k] for k in ("type", "ntotal", "params")}
    summary["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    summary["load_report"] = manifest["load_report"]
    print(orjson.dumps(summary).decode())
    return 0


def probability(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {number}")
    return number


def search_overrides(args: argparse.Namespace) -> dict[str, int]:
    """The index search parameters fixed on the command line (none: tuned to ``--recall-target``)."""
    given = {"nprobe": args.nprobe, "k_factor": args.k_factor, "efSearch": args.ef_search}
    return {key: value for key, value in given.items() if value is not None}


def cmd_kb_update(args: argparse.Namespace) -> int:
    from .kb.update import update_kb_dir

    if args.upsert is None and args.delete is None:
        raise GlinkerError("glinker kb update needs --upsert FILE and/or --delete FILE")
    manifest = update_kb_dir(
        user_path(args.kb_dir), upsert=args.upsert, delete=args.delete, on_error="skip" if args.rejects else "raise",
        rejects_path=args.rejects, verify=args.verify, batch_size=args.batch_size, device=args.device,
        progress=not args.quiet,
    )
    print(orjson.dumps({"generation": manifest["generation"], "count": manifest["count"], **manifest["update"]}).decode())
    return 0


def cmd_kb_compact(args: argparse.Namespace) -> int:
    from .kb.update import compact_kb_dir

    manifest = compact_kb_dir(user_path(args.kb_dir), verify=args.verify, progress=not args.quiet)
    print(orjson.dumps({"generation": manifest["generation"], "count": manifest["count"], **manifest["update"]}).decode())
    return 0


def cmd_kb_info(args: argparse.Namespace) -> int:
    from .kb.update import kb_info

    print(orjson.dumps(kb_info(user_path(args.kb_dir)), option=orjson.OPT_INDENT_2).decode())
    return 0


def _reader(args: argparse.Namespace):
    from .jobs.reader import InputOptions

    return InputOptions(format=args.format, text_field=args.text_field, id_field=args.id_field,
                        max_text_chars=args.max_text_chars)


def cmd_link(args: argparse.Namespace) -> int:
    from .jobs.runner import LinkJob, run_local

    job = LinkJob(
        config=user_path(args.config), kb=user_path(args.kb), input=user_path(args.input), output=args.output,
        reader=_reader(args), batch_size=args.batch_size, rejects=args.rejects, limit=args.limit,
        candidates=args.candidates, device=args.device, resume=args.resume, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if args.engine == "ray":
        try:
            from .jobs.ray_engine import run_ray
        except ImportError as exc:
            raise GlinkerError(f"--engine ray needs Ray Data: pip install -e \".[ray]\" ({exc})") from None
        summary = run_ray(job, address=args.ray_address, num_workers=args.num_workers,
                          gpus_per_worker=args.num_gpus_per_worker, shard_docs=args.shard_docs, merge=not args.no_merge)
    else:
        summary = run_local(job)
    print_link_summary(summary, to_stdout=args.output != "-")
    return 0


def print_link_summary(summary: dict, to_stdout: bool) -> None:
    """A line for people on stderr, and the summary as one JSON line on stdout unless the output goes there."""
    run = summary["this_run"]
    layers = ", ".join(f"{node} {seconds:.1f}s" for node, seconds in summary["layer_seconds"].items())
    print(f"job total: {summary['docs']} docs, {summary['mentions']} mentions, {summary['linked']} linked, "
          f"{summary['rejected']} rejected; this run: {run['docs']} docs, {run['mentions']} mentions, "
          f"{run['rejected']} rejected from input line {summary['resumed_from_line']} in {summary['seconds']:.1f}s; "
          f"layer time (job total): {layers or '-'}", file=sys.stderr)
    if to_stdout:
        print(orjson.dumps(summary).decode())


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.report import require_matplotlib, write_report
    from .evaluation.thresholds import write_threshold_config
    from .jobs.evaluate import evaluate, format_report

    if args.compare:
        return eval_compare(args)
    missing = [f"--{name}" for name in ("config", "kb", "gold") if getattr(args, name) is None]
    if missing:
        raise GlinkerError(f"glinker eval needs {', '.join(missing)} (or --compare A.json B.json)")
    if args.report:
        require_matplotlib()
    report = evaluate(user_path(args.config), user_path(args.kb), user_path(args.gold), split=args.split,
                      gold_mentions=args.gold_mentions, batch_size=args.batch_size, device=args.device,
                      limit=args.limit, text_field=args.text_field, id_field=args.id_field, group_by=args.group_by,
                      progress=not args.quiet)
    if args.write_threshold:
        written = write_threshold_config(user_path(args.config), report["threshold"], args.write_threshold)
        print(f"wrote {args.write_threshold}: threshold {written:g}", file=sys.stderr)
    if args.report:
        write_report(report, args.report, title=f"glinker eval: {Path(args.gold).name}")
        print(f"wrote {args.report}", file=sys.stderr)
    print(orjson.dumps(report).decode() if args.json else format_report(report))
    return 0


def eval_compare(args: argparse.Namespace) -> int:
    """``glinker eval --compare A.json B.json``: the mentions whose outcome changed between two runs."""
    from .evaluation.compare import compare, format_compare, load_run
    from .evaluation.report import require_matplotlib, write_compare_report

    if args.report:
        require_matplotlib()
    diff = compare(*(load_run(user_path(path)) for path in args.compare), names=args.compare)
    if args.report:
        write_compare_report(diff, args.report)
        print(f"wrote {args.report}", file=sys.stderr)
    print(orjson.dumps(diff).decode() if args.json else format_compare(diff))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .jobs.render import render

    counts = render(user_path(args.config), user_path(args.kb), user_path(args.input), args.output,
                    reader=_reader(args), limit=args.limit, device=args.device)
    print(f"wrote {args.output}: {counts['docs']} docs, {counts['mentions']} mentions, {counts['linked']} linked, "
          f"{counts['rejected']} rejected lines", file=sys.stderr)
    return 0


def _pipeline_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required,
                        help="pipeline YAML (a path, or glinker:configs/NAME.yaml for a bundled one)")
    parser.add_argument("--kb", required=required, help="kb_dir from `glinker kb build` (or an entity .jsonl/.jsonl.gz)")
    parser.add_argument("--device", help="override the device of every node: cpu, cuda, cuda:1 ...")


def _reader_args(parser: argparse.ArgumentParser, stdin: bool = False) -> None:
    parser.add_argument("--input", required=True, help="documents: .jsonl, .jsonl.gz, or text with --format txt"
                        + ("; - reads plain JSONL or text from stdin (no --resume)" if stdin else ""))
    parser.add_argument("--format", choices=["jsonl", "txt"], default="jsonl", help="txt: one document per line")
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text (default: %(default)s)")
    parser.add_argument("--id-field", default="id", help="JSONL field holding the id; absent: the line number (default: %(default)s)")
    parser.add_argument("--max-text-chars", type=int, default=DEFAULT_MAX_TEXT_CHARS, metavar="N",
                        help="a longer document is a rejected line (default: %(default)s)")


def add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="link the bundled example texts against the bundled example KB")
    demo.add_argument("--config", default="glinker:configs/default.yaml", help="pipeline YAML (default: %(default)s)")
    demo.add_argument("--entities", default="glinker:data/entities.jsonl", help="entity JSONL (default: %(default)s)")
    demo.add_argument("--texts", default="glinker:data/texts.jsonl",
                      help="JSONL with a 'text' field (default: %(default)s)")
    demo.add_argument("--show-unlinked", action="store_true", help="also print mentions left unlinked")
    demo.add_argument("--verbose", action="store_true", help="log what each pipeline node does")
    demo.set_defaults(func=cmd_demo)


def add_kb(sub) -> None:
    kb = sub.add_parser("kb", help="knowledge base tools").add_subparsers(dest="kb_command", required=True)
    build = kb.add_parser("build", help="embed a KB once and write a kb_dir (vectors, FAISS index, manifest)")
    build.add_argument("--entities", required=True, help="entity JSONL (.jsonl or .jsonl.gz)")
    build.add_argument("--out", required=True, help="kb_dir to write (replaced atomically if it exists)")
    build.add_argument("--encoder", default="sentence-transformers/all-MiniLM-L6-v2", help="sentence encoder (default: %(default)s)")
    build.add_argument("--template", default="{label}: {description}", help="entity text template (default: %(default)r)")
    build.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"],
                       help="FAISS index over name vectors; auto: flat up to 250k vectors, ivf above")
    build.add_argument("--vectors", default="names,entities", help="which vectors: names, entities or both (default: %(default)s)")
    build.add_argument("--batch-size", type=int, default=64, help="texts per encoder call (default: %(default)s)")
    build.add_argument("--device", default="cpu", help="cpu or cuda")
    build.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="stored vector precision")
    build.add_argument("--quantize", default="none", choices=["none", "int8"],
                       help="encoder weights: int8 runs it with torch dynamic quantization (CPU; default: %(default)s)")
    build.add_argument("--runtime", default="torch", choices=["torch", "onnx"],
                       help="what runs the encoder: onnx is ONNX Runtime (CPU; extra 'onnx'; default: %(default)s)")
    build.add_argument("--recall-target", type=probability, help="ivf: recall@30 against exact search that nprobe "
                       "and k_factor are tuned to, on held-out KB vectors (default: 0.95)")
    build.add_argument("--nprobe", type=positive, help="ivf: inverted lists searched per query, fixed (no tuning)")
    build.add_argument("--k-factor", type=positive, help="ivf: hits re-scored per hit asked, fixed (no tuning)")
    build.add_argument("--ef-search", type=positive, help="hnsw: efSearch, fixed")
    build.add_argument("--refine", default="vectors", choices=["vectors", "sq8"],
                       help="ivf: re-score hits against the vectors (exact scores) or against 8-bit codes of them "
                       "(sq8: half the memory of float16 vectors to keep mapped; default: %(default)s)")
    build.add_argument("--rejects", help="skip bad rows and write them here (default: stop at the first bad row)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=cmd_kb_build)
    add_kb_lifecycle(kb)


def add_kb_lifecycle(kb) -> None:
    update = kb.add_parser("update", help="add, replace and delete entities of a kb_dir in place (a new generation; "
                           "only changed texts are embedded)")
    update.add_argument("kb_dir", help="kb_dir from `glinker kb build`")
    update.add_argument("--upsert", help="entity JSONL (.jsonl or .jsonl.gz): new ids are added, known ids replaced")
    update.add_argument("--delete", help="text file of entity ids to delete, one per line (applied after --upsert)")
    update.add_argument("--rejects", help="skip bad rows and write them here (default: stop at the first bad row)")
    update.add_argument("--batch-size", type=int, default=64, help="texts per encoder call (default: %(default)s)")
    update.add_argument("--device", default="cpu", help="cpu or cuda")
    compact = kb.add_parser("compact", help="rewrite a kb_dir as a new generation, its vector index built afresh")
    compact.add_argument("kb_dir", help="kb_dir from `glinker kb build`")
    for command in (update, compact):
        command.add_argument("--verify", default="full", choices=["full", "size", "none"],
                             help="check the kb_dir before changing it (default: %(default)s)")
        command.add_argument("--quiet", action="store_true", help="no progress bars")
    update.set_defaults(func=cmd_kb_update)
    compact.set_defaults(func=cmd_kb_compact)
    info = kb.add_parser("info", help="print a kb_dir's generation, counts, encoder, template, index and size")
    info.add_argument("kb_dir", help="kb_dir from `glinker kb build`")
    info.set_defaults(func=cmd_kb_info)


def add_link(sub) -> None:
    link = sub.add_parser("link", help="link a large JSONL/text file, streaming and resumable (bulk job)")
    _pipeline_args(link)
    _reader_args(link, stdin=True)
    link.add_argument("--output", required=True, help="linked JSONL (.jsonl, or .jsonl.gz); a checkpoint OUTPUT.ckpt "
                      "goes beside it; - writes stdout (no checkpoint, the summary only on stderr)")
    link.add_argument("--batch-size", type=int, default=64, help="documents per pipeline call and per checkpoint (default: %(default)s)")
    link.add_argument("--limit", type=int, help="stop after this many input records (documents and rejected lines)")
    link.add_argument("--rejects", help="write bad input lines here (JSONL: line, reason, raw); they are always counted")
    link.add_argument("--candidates", type=int, default=0, metavar="K", help="also write the first K L2 candidates of each mention")
    link.add_argument("--resume", action="store_true", help="continue an interrupted job from its checkpoint")
    link.add_argument("--overwrite", action="store_true", help="replace an existing output instead of refusing")
    link.add_argument("--quiet", action="store_true", help="no progress bar")
    link.add_argument("--engine", choices=["local", "ray"], default="local", help="local process or Ray Data (default: %(default)s)")
    link.add_argument("--ray-address", help="Ray cluster to join, e.g. auto (default: start a local Ray instance)")
    link.add_argument("--num-workers", type=int, default=2, help="ray: pipeline actors (default: %(default)s)")
    link.add_argument("--num-gpus-per-worker", type=float, default=0.0, help="ray: GPUs per actor; >0 implies --device cuda")
    link.add_argument("--shard-docs", type=int, default=10_000, help="ray: documents per shard (default: %(default)s)")
    link.add_argument("--no-merge", action="store_true", help="ray: keep the shards in OUTPUT.shards/ instead of merging them")
    link.set_defaults(func=cmd_link)


def add_eval(sub) -> None:
    ev = sub.add_parser("eval", help="score a pipeline on gold-annotated documents and explain its errors "
                        "(P/R/F1, outcome categories, recall@k, threshold calibration, HTML report)")
    _pipeline_args(ev, required=False)
    ev.add_argument("--gold", help="JSONL(.gz) documents with 'text' and 'mentions' [{start, end, entity_id, entity_ids}]")
    ev.add_argument("--split", help="only documents whose 'split' field equals this (e.g. test)")
    ev.add_argument("--gold-mentions", action="store_true", help="give the gold spans to the pipeline (its L1 nodes are removed)")
    ev.add_argument("--json", action="store_true", help="print one JSON line instead of the table (with every mention's outcome)")
    ev.add_argument("--batch-size", type=int, default=32, help="documents per pipeline call (default: %(default)s)")
    ev.add_argument("--limit", type=int, help="only the first N documents (after --split)")
    ev.add_argument("--text-field", default="text", help="gold field holding the text (default: %(default)s)")
    ev.add_argument("--id-field", default="doc_id", help="gold field holding the document id (default: %(default)s)")
    ev.add_argument("--group-by", metavar="FIELD", help="also count the outcomes per value of this document field (e.g. split)")
    ev.add_argument("--report", metavar="HTML", help="write a self-contained HTML report (plots, examples); needs matplotlib")
    ev.add_argument("--write-threshold", metavar="CONFIG_OUT", help="write a copy of --config linking at the best-F1 threshold")
    ev.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                    help="compare two saved --json runs (which mentions changed outcome) instead of evaluating")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)


def add_render(sub) -> None:
    render = sub.add_parser("render", help="write an HTML page of linked documents (hover a mention for its entity)")
    _pipeline_args(render)
    _reader_args(render)
    render.add_argument("--output", required=True, help="HTML file to write")
    render.add_argument("--limit", type=int, default=50, help="documents shown (default: %(default)s)")
    render.set_defaults(func=cmd_render)


SUBCOMMANDS = [add_demo, add_kb, add_link, add_eval, add_render, add_train, add_serve]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="glinker", description="Entity linking: texts in, KB-linked mentions out.")
    parser.add_argument("--version", action="version", version=f"glinker {__version__}")
    parser.add_argument("--list-configs", action=ListConfigs,
                        help="print the bundled pipeline configs (pass them as --config glinker:configs/NAME.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except GlinkerError as exc:
        print(f"glinker: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the system refuses (read-only, full disk, a folder where a file goes)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"glinker: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("glinker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
