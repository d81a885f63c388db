"""Batches of similar length (fewer padding tokens per model call), run on a few threads at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from ..errors import ConfigError

WORKERS_ENV = "GLINKER_MODEL_WORKERS"
CPU_WORKERS = 2

B = TypeVar("B", bound=Sized)  # a batch: indices or rows
T = TypeVar("T")


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices in batches of ``batch_size``, longest first (stable)."""
    order = np.argsort([-n for n in lengths], kind="stable")
    return [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]


def model_workers(device: str) -> int:
    """Model calls run at once: ``$GLINKER_MODEL_WORKERS`` if set, else two on a CPU with two or more
    cores (two batches at once keep two cores busier than torch's own threads do on these small
    matrices: a MiniLM pass over 200 abstracts took 14.4 s against 17.5 s), one on an accelerator."""
    value = os.environ.get(WORKERS_ENV)
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{WORKERS_ENV} must be a whole number >= 1, got {value!r}")
        return int(value)
    return min(CPU_WORKERS, os.cpu_count() or 1) if device.startswith("cpu") else 1


def run_batches(fn: Callable[[B], T], batches: Iterable[B], workers: int = 1, progress: bool = False,
                desc: str = "", unit: str = "text") -> Iterator[tuple[B, T]]:
    """``(batch, fn(batch))`` for each batch, in order, on up to ``workers`` threads (torch kernels and
    tokenizers release the GIL), with an optional progress bar over the items of finished batches."""
    batches = list(batches)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit=unit, smoothing=0.1)
    try:
        if workers <= 1 or len(batches) <= 1:
            results = map(fn, batches)
            yield from _counted(batches, results, bar)
        else:
            pool = ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="glinker-model")
            try:
                yield from _counted(batches, pool.map(fn, batches), bar)
            finally:  # an error (or a consumer that stops early) cancels the batches not started
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()


def _counted(batches: list[B], results: Iterator[T], bar) -> Iterator[tuple[B, T]]:
    for batch, result in zip(batches, results, strict=True):
        if bar is not None:
            bar.update(len(batch))
        yield batch, result
