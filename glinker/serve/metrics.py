"""Prometheus metrics of one server (their own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, queue_depth: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("glinker_requests", "/link requests answered, by HTTP status", ["code"], registry=r)
        self.errors = Counter("glinker_errors", "/link requests refused or failed, by HTTP status", ["code"],
                              registry=r)
        self.documents = Counter("glinker_documents", "documents linked", registry=r)
        self.mentions = Counter("glinker_mentions", "mentions returned", registry=r)
        self.batch_docs = Histogram("glinker_batch_docs", "documents per pipeline call", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.batch_seconds = Histogram("glinker_batch_seconds", "seconds per pipeline call", buckets=SECONDS_BUCKETS,
                                       registry=r)
        self.request_seconds = Histogram("glinker_request_seconds", "seconds per /link request",
                                         buckets=SECONDS_BUCKETS, registry=r)
        queue = Gauge("glinker_queue_docs", "documents waiting for or in a pipeline call", registry=r)
        queue.set_function(queue_depth)

    def answered(self, code: int, seconds: float) -> None:
        self.requests.labels(code=str(code)).inc()
        if code >= 400:
            self.errors.labels(code=str(code)).inc()
        self.request_seconds.observe(seconds)

    def linked(self, results: list[dict]) -> None:
        self.documents.inc(len(results))
        self.mentions.inc(sum(len(r["entities"]) for r in results))

    def batch(self, docs: int, seconds: float) -> None:
        self.batch_docs.observe(docs)
        self.batch_seconds.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
