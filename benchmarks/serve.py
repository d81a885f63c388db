"""glinker serve under load: 1, 8 and 64 concurrent one-document clients, against `glinker link` on
the same documents in the same run, then overload (clients far beyond the queue).

Starts ``glinker serve`` on a free loopback port, waits for ``/health``, and per client count sends
each BC5CDR abstract once (1 document per request); prints docs/s, p50/p95/p99 latency, errors and
the responses that differ from the ``glinker link`` line of their document. Overload: ``--overload-
clients`` clients send ``--overload-requests`` requests with the queue at ``--max-queue-docs``;
it counts 200s, 429s (all must carry Retry-After), timeouts and wrong responses, and samples the
server's RSS every 2,000 requests. Prints a table, then one JSON line.

    python benchmarks/serve.py [--docs 200] [--overload-requests 20000] [--overload-clients 512]
                               [--config configs/medic.yaml --kb KB] [--threads N]

Default pipeline: configs/medic.yaml over the cached MEDIC kb_dir (benchmarks/cache/medic-minilm).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import orjson
from bulk import run as link_run
from common import ROOT, bc5cdr_docs, medic_kb_dir, require_shared_data

TIMEOUT = 120  # seconds a request may take before it counts as a timeout
RSS_EVERY = 2_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(args, port: int, env: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "glinker.cli", "serve", "--config", str(args.config), "--kb", str(args.kb),
           "--port", str(port), "--max-batch-docs", str(args.max_batch_docs), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue-docs", str(args.max_queue_docs), "--max-queue-seconds", str(args.max_queue_seconds),
           "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while True:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"glinker serve did not become ready:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)


async def send(client: httpx.AsyncClient, doc: dict) -> tuple[float, int, dict | None, bool]:
    """(seconds, status or 0 for a timeout/transport error, the result, whether a 429 had Retry-After)."""
    started = time.perf_counter()
    try:
        response = await client.post("/link", json={"texts": [doc["text"]], "ids": [doc["id"]]})
    except httpx.HTTPError as exc:  # the result is then the error's kind (ReadTimeout, ConnectError, ...)
        return time.perf_counter() - started, 0, type(exc).__name__, False
    seconds = time.perf_counter() - started
    result = response.json()["results"][0] if response.status_code == 200 else None
    return seconds, response.status_code, result, "retry-after" in response.headers


async def drive(url: str, docs: list[dict], requests: int, clients: int, on_answer=None) -> tuple[list, float]:
    """``requests`` one-document requests (cycling through ``docs``) from ``clients`` concurrent clients."""
    answers: list = [None] * requests
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=TIMEOUT) as client:
        async def worker():
            for i in counter:
                answers[i] = await send(client, docs[i % len(docs)])
                if on_answer is not None:
                    on_answer(i)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
    return answers, time.perf_counter() - started


def wrong(answers: list, docs: list[dict], expected: dict) -> int:
    return sum(1 for i, (_, status, result, _) in enumerate(answers)
               if status == 200 and result != expected[docs[i % len(docs)]["id"]])


def phase(url: str, docs: list[dict], clients: int, expected: dict) -> dict:
    answers, seconds = asyncio.run(drive(url, docs, len(docs), clients))
    latencies = np.array([a[0] for a in answers if a[1] == 200]) * 1000
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if len(latencies) else (float("nan"),) * 3
    return {"clients": clients, "docs": len(docs), "seconds": round(seconds, 2),
            "docs_per_second": round(sum(a[1] == 200 for a in answers) / seconds, 2),
            "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1),
            "errors": sum(a[1] != 200 for a in answers), "mismatches": wrong(answers, docs, expected)}


def failures(answers: list) -> dict:
    """Requests that got no HTTP answer, by error kind: count and the longest wait (s)."""
    kinds: dict[str, list[float]] = {}
    for seconds, status, kind, _ in answers:
        if status == 0:
            kinds.setdefault(kind, []).append(seconds)
    return {k: {"count": len(v), "max_seconds": round(max(v), 1)} for k, v in kinds.items()}


def overload(url: str, docs: list[dict], args, pid: int, expected: dict) -> dict:
    rss = [round(rss_mib(pid), 1)]

    def sample(i: int) -> None:
        if (i + 1) % RSS_EVERY == 0:
            rss.append(round(rss_mib(pid), 1))

    answers, seconds = asyncio.run(drive(url, docs, args.overload_requests, args.overload_clients, sample))
    statuses = Counter(a[1] for a in answers)
    return {"clients": args.overload_clients, "requests": args.overload_requests, "seconds": round(seconds, 2),
            "ok": statuses[200], "queue_full": statuses[429], "timeouts_or_transport_errors": statuses[0],
            "failed_by_kind": failures(answers),
            "other": {str(k): v for k, v in statuses.items() if k not in (0, 200, 429)},
            "429_without_retry_after": sum(1 for a in answers if a[1] == 429 and not a[3]),
            "mismatches": wrong(answers, docs, expected), "rss_mib_every_2000": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="BC5CDR abstracts per client count (default: %(default)s)")
    parser.add_argument("--clients", default="1,8,64", help="client counts, comma-separated (default: %(default)s)")
    parser.add_argument("--overload-requests", type=int, default=20_000)
    parser.add_argument("--overload-clients", type=int, default=512)
    parser.add_argument("--max-batch-docs", type=int, default=64, help="server batch, = glinker link's --batch-size")
    parser.add_argument("--max-wait-ms", type=float, default=10)
    parser.add_argument("--max-queue-docs", type=int, default=128, help="room for the 64 clients, not for overload")
    parser.add_argument("--max-queue-seconds", type=float, default=TIMEOUT / 2,
                        help="server's queue time bound, under the client timeout (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of server and link (default: torch's choice)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "medic.yaml")
    parser.add_argument("--kb", type=Path, help="kb_dir (default: the cached MEDIC kb_dir)")
    args = parser.parse_args()
    require_shared_data()
    args.kb = args.kb or medic_kb_dir()
    docs = [{"id": d["doc_id"], "text": d["text"]} for d in bc5cdr_docs("test")[: args.docs]]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    with tempfile.TemporaryDirectory(prefix="glinker-serve-") as tmp:
        tmp = Path(tmp)
        source, output = tmp / "docs.jsonl", tmp / "linked.jsonl"
        source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
        print(f"glinker link on {len(docs)} documents ...", file=sys.stderr)
        link = link_run(args.config, args.kb, source, output, args.max_batch_docs, env)
        expected = {line["id"]: line for line in map(orjson.loads, output.read_bytes().splitlines())}
        port = free_port()
        server = start_server(args, port, env, tmp / "server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            phases = []
            for clients in map(int, filter(None, args.clients.split(","))):
                print(f"{clients} clients ...", file=sys.stderr)
                phases.append(phase(url, docs, clients, expected))
                print(orjson.dumps(phases[-1]).decode(), file=sys.stderr)
            print(f"overload: {args.overload_requests} requests from {args.overload_clients} clients ...",
                  file=sys.stderr)
            over = overload(url, docs, args, server.pid, expected)
            peak_rss = round(rss_mib(server.pid, "VmHWM"), 1)
        finally:
            server.send_signal(signal.SIGTERM)
            exit_code = server.wait(60)
    report(args, link, phases, over, peak_rss, exit_code)


def report(args, link: dict, phases: list[dict], over: dict, peak_rss: float, exit_code: int) -> None:
    print(f"glinker link: {link['docs']} docs, {link['docs_per_second']} docs/s (batch {args.max_batch_docs}), "
          f"peak RSS {link['peak_rss_mib']} MiB")
    print(f"{'clients':>7} {'docs/s':>8} {'x link':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'mismatches':>10}")
    for p in phases:
        p["vs_link"] = round(p["docs_per_second"] / link["docs_per_second"], 2)
        print(f"{p['clients']:>7} {p['docs_per_second']:>8.2f} {p['vs_link']:>7.2f} {p['p50_ms']:>8.1f} "
              f"{p['p95_ms']:>8.1f} {p['p99_ms']:>8.1f} {p['errors']:>6} {p['mismatches']:>10}")
    print(f"overload: {over['requests']} requests from {over['clients']} clients in {over['seconds']} s: "
          f"{over['ok']} ok, {over['queue_full']} 429 ({over['429_without_retry_after']} without Retry-After), "
          f"{over['timeouts_or_transport_errors']} timeouts, other {over['other']}, {over['mismatches']} mismatches; "
          f"server RSS MiB every {RSS_EVERY}: {over['rss_mib_every_2000']}")
    print(f"server peak RSS {peak_rss} MiB; exit code after SIGTERM {exit_code}")
    print(orjson.dumps({
        "benchmark": "serve", "config": str(args.config), "kb": str(args.kb), "threads": args.threads,
        "link": {k: link[k] for k in ("docs", "docs_per_second", "peak_rss_mib", "load_seconds")},
        "phases": phases, "overload": over, "server_peak_rss_mib": peak_rss, "exit_code": exit_code,
    }).decode())


if __name__ == "__main__":
    main()
