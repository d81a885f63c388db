"""``glinker serve --engine ray``: the same HTTP front, the pipeline in Ray Serve replicas.

Each replica loads the pipeline once and batches the documents it receives with Ray Serve's own
``serve.batch`` (up to ``--max-batch-docs``, waiting at most ``--max-wait-ms``); Ray spreads the
documents over ``--replicas`` replicas, on one machine or a cluster (``--ray-address``; the config
and KB must then be at the same paths on every node). Requests are checked, counted and refused
(429) here, before any document leaves this process. Ray's own HTTP proxy is not started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ray import serve

from ..jobs.ray_engine import init_ray
from .batcher import admit
from .service import Document, LinkService


@serve.deployment
class LinkReplica:
    """One replica: the pipeline, and a ``serve.batch`` queue in front of it."""

    def __init__(self, config: Path, kb: Path, device: str | None, max_text_chars: int, max_batch_docs: int,
                 max_wait_ms: float):
        self.service = LinkService(config, kb, device=device, max_text_chars=max_text_chars)
        self.link.set_max_batch_size(max_batch_docs)
        self.link.set_batch_wait_timeout_s(max_wait_ms / 1000)

    @serve.batch
    async def link(self, docs: list[Document]) -> list[dict]:
        return await asyncio.to_thread(self.service.run, docs)


class RayBackend:
    """Sends each document to the replicas and gathers the results of a request, in order."""

    def __init__(self, handle, max_queue_docs: int):
        self.handle, self.max_queue_docs = handle, max_queue_docs
        self.depth = 0
        self.closing = False

    @classmethod
    def deploy(cls, config: Path, kb: Path, replicas: int = 1, max_batch_docs: int = 32, max_wait_ms: float = 10,
               max_queue_docs: int = 2048, device: str | None = None, max_text_chars: int = 1_000_000,
               address: str | None = None, num_cpus: float = 1) -> RayBackend:
        """Start (or join) Ray, run ``replicas`` replicas and wait until they are ready."""
        init_ray(address)
        serve.start(proxy_location="Disabled")
        deployment = LinkReplica.options(num_replicas=replicas, max_ongoing_requests=2 * max_batch_docs,
                                         ray_actor_options={"num_cpus": num_cpus})
        app = deployment.bind(Path(config).resolve(), Path(kb).resolve(), device, max_text_chars, max_batch_docs,
                              max_wait_ms)
        return cls(serve.run(app, name="glinker", route_prefix=None), max_queue_docs)

    def start(self) -> None:
        pass

    async def submit(self, docs: Sequence[Document]) -> list[dict]:
        admit(self.closing, self.depth, len(docs), self.max_queue_docs, 0.0)
        self.depth += len(docs)
        try:
            return list(await asyncio.gather(*(self.handle.link.remote(doc) for doc in docs)))
        finally:
            self.depth -= len(docs)

    async def close(self) -> None:
        """Take no new documents; the requests in flight are done (uvicorn waited for them); stop the replicas."""
        self.closing = True
        await asyncio.to_thread(serve.delete, "glinker")


def ray_loader(args, config: Path, kb: Path):
    def load(metrics):
        return RayBackend.deploy(config, kb, args.replicas, args.max_batch_docs, args.max_wait_ms,
                                 args.max_queue_docs, args.device, args.max_text_chars, args.ray_address)

    return load
