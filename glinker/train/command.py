"""The ``glinker train`` subcommand (added to the ``glinker`` parser by ``glinker.cli``)."""

from __future__ import annotations

import argparse

import orjson


def cmd_train(args: argparse.Namespace) -> int:
    from . import train

    summary = train(args.config, out=args.out, resume=args.resume, max_steps=args.max_steps, device=args.device,
                    quiet=args.quiet)
    print(orjson.dumps({k: summary[k] for k in ("task", "model", "best", "seconds", "rejected",
                                                "peak_rss_mib")}).decode())
    return 0


def add_train(sub) -> None:
    train = sub.add_parser("train", help="train a model of the pipeline (retriever, ner, linker) from one YAML",
                           description="Train from a YAML with task, model, peft, data and training sections "
                                       "(see configs/train/ and README 'Train on your KB'). The model is "
                                       "written to OUT/model.")
    train.add_argument("config", help="training YAML (relative paths inside it are relative to the current folder)")
    train.add_argument("--out", help="output folder (default: training.output_dir of the YAML); must be empty "
                                     "unless --resume")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, at that checkpoint's step")
    train.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides the YAML)")
    train.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    train.add_argument("--quiet", action="store_true", help="no progress bars or per-evaluation lines")
    train.set_defaults(func=cmd_train)
