"""Dynamic micro-batching: documents of concurrent requests share one pipeline call.

Each request's documents join one queue. A loop on the event loop takes the oldest documents, waits
until ``max_batch_docs`` are there or the oldest has waited ``max_wait_ms``, runs the batch in a
worker thread (the event loop keeps accepting requests meanwhile) and hands each result to the
request that sent the document. While one batch runs, the next one gathers.

Back-pressure is counted in documents and in seconds: a request is refused (429) when the queue has
no room for its documents, or when the documents ahead of it would take more than
``max_queue_seconds`` to link at the rate of the last batch; a document still queued after
``max_queue_seconds`` is answered 429 rather than left to the client's timeout.
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


def queue_full(detail: str, depth: int, docs_per_second: float) -> RequestError:
    """429 with a ``Retry-After`` of the seconds the queue needs to drain (at least 1)."""
    retry = max(1, math.ceil(depth / docs_per_second)) if docs_per_second > 0 else 1
    return RequestError(429, "queue full", detail, headers={"Retry-After": str(retry)})


def admit(closing: bool, depth: int, docs: int, limit: int, docs_per_second: float,
          max_seconds: float = math.inf) -> None:
    """Refuse ``docs`` new documents while draining (503), or (429) when the queue has no room for them
    all or would need more than ``max_seconds`` to link them at ``docs_per_second``."""
    if closing:
        raise RequestError(503, "shutting down", "the server is draining its queue and takes no new requests")
    if depth + docs > limit:
        raise queue_full(f"texts: {docs} documents do not fit; {depth} of {limit} queued", depth, docs_per_second)
    if docs_per_second > 0 and (depth + docs) / docs_per_second > max_seconds:
        raise queue_full(f"texts: {depth} documents queued take about {depth / docs_per_second:.0f} s to link; "
                         f"the limit is {max_seconds:g} s", depth, docs_per_second)


class Batcher:
    """Collects documents into batches for ``run`` (a blocking function: documents -> results, in order)."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch_docs: int = 32, max_wait_ms: float = 10,
                 max_queue_docs: int = 2048, on_batch: Callable[[int, float], None] | None = None,
                 max_queue_seconds: float = math.inf):
        self.run, self.on_batch = run, on_batch
        self.max_batch_docs, self.max_wait = max_batch_docs, max_wait_ms / 1000
        self.max_queue_docs, self.max_queue_seconds = max_queue_docs, max_queue_seconds
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
        admit(self.closing, self.depth, len(docs), self.max_queue_docs, self.docs_per_second,
              self.max_queue_seconds)
        loop, now = asyncio.get_running_loop(), time.monotonic()
        pending = [Pending(doc, loop.create_future(), now) for doc in docs]
        self.queue.extend(pending)
        self._wake.set()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        except BaseException:
            for p in pending:  # the request failed (or its client left): its other documents are not linked
                p.future.cancel()
            raise

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
            batch = self._take()
            if batch:
                await self._run(batch)

    def _take(self) -> list[Pending]:
        """Up to ``max_batch_docs`` queued documents still awaited; those queued longer than
        ``max_queue_seconds`` are answered 429 instead."""
        batch: list[Pending] = []
        expired_before = time.monotonic() - self.max_queue_seconds
        while self.queue and len(batch) < self.max_batch_docs:
            p = self.queue.popleft()
            if p.future.done():
                continue
            if p.queued_at < expired_before:
                p.future.set_exception(queue_full(f"waited more than {self.max_queue_seconds:g} s in the queue",
                                                  len(self.queue), self.docs_per_second))
                continue
            batch.append(p)
        return batch

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
