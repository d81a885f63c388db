"""``glinker kb build``: embed a KB once and write it as a kb_dir."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .base import KnowledgeBase


def build_kb_dir(
    entities: str | Path,
    out_dir: str | Path,
    encoder_name: str,
    template: str = "{label}: {description}",
    index_type: str = "auto",
    batch_size: int = 64,
    device: str = "cpu",
    dtype: str = "float32",
    kinds: tuple[str, ...] = ("names", "entities"),
    on_error: str = "raise",
    rejects_path: str | Path | None = None,
    max_length: int = 128,
    progress: bool = True,
    quantize: str = "none",
    runtime: str = "torch",
    recall_target: float | None = None,
    search: dict[str, Any] | None = None,
    refine: str = "vectors",
) -> dict[str, Any]:
    """Load ``entities``, embed every name and/or entity text, build the FAISS index, write ``out_dir``.
    ``recall_target`` (ivf, default 0.95) is what the search parameters are tuned to; ``search`` fixes them
    instead (``nprobe``, ``k_factor``, ``efSearch``: see ``VectorStore.configure``); ``refine`` (ivf): what hits
    are re-scored against, the vectors or their 8-bit codes (``sq8``, for KBs whose vectors outgrow the RAM)."""
    from ..models.encoder import get_encoder
    from ..templates import parse_template

    parse_template(template)
    started = time.perf_counter()
    kb = KnowledgeBase()
    kb.vector_store.configure(recall_target=recall_target, refine=refine, **(search or {}))
    report = kb.load(entities, on_error=on_error, rejects_path=rejects_path)
    encoder = get_encoder(encoder_name, device=device, max_length=max_length, quantize=quantize, runtime=runtime)
    for kind in kinds:
        kb.vectors(encoder, kind, template, batch_size=batch_size, progress=progress)
    if "names" in kinds:
        kb.vector_index(encoder, "names", index_type=index_type, progress=progress)
    manifest = kb.save_dir(out_dir, encoder.model_id, template, index_type=index_type, dtype=dtype,
                           build_seconds=round(time.perf_counter() - started, 3), progress=progress)
    manifest["load_report"] = report.to_dict()
    return manifest
