"""The ``glinker serve`` subcommand (added to the ``glinker`` parser by ``glinker.cli``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..errors import GlinkerError

DRAIN_SECONDS = 30  # SIGTERM: the most time given to requests in flight and queued documents


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def read_key(path: str | None) -> str | None:
    if path is None:
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    if not key:
        raise GlinkerError(f"--api-key-file {path} is empty")
    return key


def local_loader(args: argparse.Namespace, config: Path, kb: Path):
    """Builds, in the loading thread, the pipeline and the batcher that feeds it."""
    from .batcher import Batcher
    from .service import LinkService

    def load(metrics):
        service = LinkService(config, kb, device=args.device, max_text_chars=args.max_text_chars)
        return Batcher(service.run, args.max_batch_docs, args.max_wait_ms, args.max_queue_docs, on_batch=metrics.batch,
                       max_queue_seconds=args.max_queue_seconds)

    return load


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import ServeOptions, create_app
    except ImportError as exc:
        raise GlinkerError(f"glinker serve needs the serve extra: pip install -e \".[serve]\" ({exc})") from None
    from .service import Limits, RequestChecker

    config, kb = Path(args.config), Path(args.kb)
    if not kb.exists():
        raise GlinkerError(f"--kb {args.kb}: not found (a kb_dir or an entity .jsonl/.jsonl.gz)")
    limits = Limits(args.max_request_docs, args.max_text_chars, args.max_body_bytes)
    checker = RequestChecker(config, limits, args.device)
    if args.engine == "ray":
        from .ray_serve import ray_loader

        load = ray_loader(args, config, kb)
    else:
        load = local_loader(args, config, kb)
    failures: list[Exception] = []

    def stop(exc: Exception) -> None:
        failures.append(exc)
        server.should_exit = True

    app = create_app(checker, load, ServeOptions(limits, read_key(args.api_key_file)), stop)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, access_log=False,
                                           timeout_graceful_shutdown=DRAIN_SECONDS, log_level=args.log_level,
                                           timeout_keep_alive=args.keep_alive_seconds))
    # uvicorn drains on SIGTERM, then raises the signal again once its own handler is gone: answered by
    # this no-op, so a drained server exits 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    if failures:
        raise GlinkerError(f"loading the pipeline failed: {failures[0]}")
    print("glinker serve: stopped", file=sys.stderr)
    return 0


def add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="HTTP linking service: POST /link, GET /health, GET /metrics",
                           description="Link texts over HTTP; documents of concurrent requests are linked "
                                       "together in batches. SIGTERM drains the queue and exits 0.")
    serve.add_argument("--config", required=True, help="pipeline YAML")
    serve.add_argument("--kb", required=True, help="kb_dir from `glinker kb build` (or an entity .jsonl/.jsonl.gz)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    serve.add_argument("--max-batch-docs", type=positive, default=32, help="documents per pipeline call (default: %(default)s)")
    serve.add_argument("--max-wait-ms", type=float, default=10, help="how long a document waits for others to "
                       "fill its batch (default: %(default)s)")
    serve.add_argument("--max-queue-docs", type=positive, default=2048, help="documents queued or linking; beyond, "
                       "requests get 429 (default: %(default)s)")
    serve.add_argument("--max-queue-seconds", type=float, default=30, help="local engine: refuse (429) a request "
                       "when the queued documents would take longer than this to link at the last batch's rate, "
                       "and answer 429 for a document queued longer (default: %(default)s)")
    serve.add_argument("--max-request-docs", type=positive, default=256, help="texts per request; beyond, 413 "
                       "(default: %(default)s)")
    serve.add_argument("--max-text-chars", type=positive, default=1_000_000, help="characters per text; beyond, 413 "
                       "(default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=positive, default=32 * 1024 * 1024, help="request body size; "
                       "beyond, 413 (default: %(default)s)")
    serve.add_argument("--device", help="override the device of every node: cpu, cuda, cuda:1 ...")
    serve.add_argument("--api-key-file", help="file holding the key /link requests must send "
                       "(Authorization: Bearer KEY or X-API-Key: KEY)")
    serve.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: batches in this process; ray: Ray Serve replicas (default: %(default)s)")
    serve.add_argument("--replicas", type=positive, default=1, help="ray: pipeline replicas (default: %(default)s)")
    serve.add_argument("--ray-address", help="ray: cluster to join, e.g. auto (default: start a local Ray instance)")
    serve.add_argument("--keep-alive-seconds", type=float, default=75, help="how long an idle client connection "
                       "stays open; above the idle timeout of a proxy in front, so the server never closes a "
                       "connection a client is reusing (default: %(default)s)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="server log level (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)
