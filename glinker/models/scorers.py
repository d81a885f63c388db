"""Building the candidate scorer of a backend (shared by L3 and L4)."""

from __future__ import annotations

import dataclasses

from ..templates import render_template
from ..types import Candidate


def candidate_text(candidate: Candidate, template: str) -> str:
    """A candidate rendered with the schema template, from the same fields as the KB renders its rows."""
    fields = {f.name: getattr(candidate, f.name) for f in dataclasses.fields(candidate) if f.name != "metadata"}
    return render_template(template, {**candidate.metadata, **fields})


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
