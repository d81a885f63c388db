"""Batches of similar length: fewer padding tokens per model call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def length_batches(lengths: Sequence[int], batch_size: int, progress: bool = False, desc: str = "",
                   unit: str = "text") -> Iterator[np.ndarray]:
    """Indices in batches of ``batch_size``, longest first (stable), with an optional progress bar."""
    order = np.argsort([-n for n in lengths], kind="stable")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(order), desc=desc, unit=unit, smoothing=0.1)
    for lo in range(0, len(order), batch_size):
        yield order[lo : lo + batch_size]
        if bar is not None:
            bar.update(len(order[lo : lo + batch_size]))
    if bar is not None:
        bar.close()
