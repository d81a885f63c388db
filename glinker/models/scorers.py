"""Building the candidate scorer of a backend (shared by L3 and L4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..templates import render_template
from ..types import Candidate


def candidate_text(candidate: Candidate, template: str) -> str:
    """A candidate rendered with the schema template, from the same fields as the KB renders its rows."""
    fields = {f.name: getattr(candidate, f.name) for f in dataclasses.fields(candidate) if f.name != "metadata"}
    return render_template(template, {**candidate.metadata, **fields})


def candidate_vectors(kb, encoder, kind: str, template: str, candidates: list[Candidate],
                      embed: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The KB's ``kind`` vectors of the candidates (rows looked up in one pass) and their KB rows; a
    candidate missing from the KB (row -1) is embedded now by ``embed`` from its own fields."""
    rows = kb.store.rows_of([c.entity_id for c in candidates])
    vectors = np.zeros((len(candidates), encoder.dim), dtype=np.float32)
    known = rows >= 0
    if known.any():
        vectors[known] = kb.vectors(encoder, kind, template).matrix[rows[known]]
    if not known.all():
        missing = np.flatnonzero(~known)
        vectors[missing] = embed([candidate_text(candidates[i], template) for i in missing])
    return vectors, rows


def make_scorer(backend: str, config, template: str, kb, max_labels: int | None = None):
    """The scorer of a backend (models load here, once)."""
    token = getattr(config, "token", None) or getattr(config, "huggingface_token", None)
    if backend == "dense":
        from glinker.models.dense import DenseScorer

        return DenseScorer(kb, config.model_name, template, device=config.device, max_length=config.max_length or 256,
                           context_chars=config.context_chars, retrieval_weight=config.retrieval_weight,
                           batch_size=config.batch_size, hierarchy=config.hierarchy,
                           support_weight=config.support_weight)
    if backend == "gliner":
        from glinker.models.gliner import GlinerLinkScorer

        return GlinerLinkScorer(kb, config.model_name, template, device=config.device, max_length=config.max_length,
                                batch_size=config.batch_size, token=token,
                                max_labels=max_labels or getattr(config, "max_labels", None),
                                use_precomputed=getattr(config, "use_precomputed_embeddings", True),
                                cache_embeddings=getattr(config, "cache_embeddings", False))
    from glinker.models.cross_encoder import CrossEncoderScorer

    return CrossEncoderScorer(config.model_name, template, device=config.device, max_length=config.max_length or 512,
                              batch_size=config.batch_size, token=token,
                              context_chars=getattr(config, "context_chars", 100))
