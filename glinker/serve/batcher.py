"""Dynamic micro-batching: documents of concurrent requests share one pipeline call.

Each request's documents join one queue. A loop on the event loop takes the oldest documents, waits
until ``max_batch_docs`` are there or the oldest has waited ``max_wait_ms``, runs the batch in a
worker thread (the event loop keeps accepting requests meanwhile) and hands each result to the
request that sent the document. While one batch runs, the next one gathers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .service import RequestError


@dataclass(slots=True)
class Pending:
    doc: Any
    future: asyncio.Future
    queued_at: float


def admit(closing: bool, depth: int, docs: int, limit: int, docs_per_second: float) -> None:
    """Refuse ``docs`` new documents while draining (503), or when the queue has no room for them all (429,
    with a ``Retry-After`` of the seconds the queue needs to drain, at least 1)."""
    if closing:
        raise RequestError(503, "shutting down", "the server is draining its queue and takes no new requests")
    if depth + docs > limit:
        retry = max(1, math.ceil(depth / docs_per_second)) if docs_per_second > 0 else 1
        raise RequestError(429, "queue full", f"texts: {docs} documents do not fit; {depth} of {limit} queued",
                           headers={"Retry-After": str(retry)})


class Batcher:
    """Collects documents into batches for ``run`` (a blocking function: documents -> results, in order)."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch_docs: int = 32, max_wait_ms: float = 10,
                 max_queue_docs: int = 2048, on_batch: Callable[[int, float], None] | None = None):
        self.run, self.on_batch = run, on_batch
        self.max_batch_docs, self.max_wait = max_batch_docs, max_wait_ms / 1000
        self.max_queue_docs = max_queue_docs
        self.queue: deque[Pending] = deque()
        self.running = 0
        self.docs_per_second = 0.0
        self.closing = False
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glinker-batch")
        self._task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        """Documents queued or in the running batch."""
        return len(self.queue) + self.running

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, docs: Sequence[Any]) -> list[Any]:
        """The results of ``docs``, once linked; a full queue (or a closing batcher) refuses them whole."""
        admit(self.closing, self.depth, len(docs), self.max_queue_docs, self.docs_per_second)
        loop, now = asyncio.get_running_loop(), time.monotonic()
        pending = [Pending(doc, loop.create_future(), now) for doc in docs]
        self.queue.extend(pending)
        self._wake.set()
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def close(self) -> None:
        """Take no new documents, link those queued, then stop."""
        self.closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)

    async def _loop(self) -> None:
        while self.queue or not self.closing:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._gather()
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.max_batch_docs))]
            await self._run(batch)

    async def _gather(self) -> None:
        """Wait until a full batch is queued or the oldest document has waited ``max_wait``."""
        deadline = self.queue[0].queued_at + self.max_wait
        while len(self.queue) < self.max_batch_docs and not self.closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    async def _run(self, batch: list[Pending]) -> None:
        self.running = len(batch)
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._pool, self.run, [p.doc for p in batch])
        except Exception as exc:  # noqa: BLE001 - the batch's requests get the error, the loop goes on
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            self.running = 0
        seconds = time.perf_counter() - started
        self.docs_per_second = len(batch) / max(seconds, 1e-6)
        if self.on_batch is not None:
            self.on_batch(len(batch), seconds)
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():  # a request whose client went away
                p.future.set_result(result)
