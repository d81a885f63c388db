"""The linking backends, one table: a backend name (L3/L4 config ``backend``) -> how to build its scorer.

A scorer gives every candidate of every mention a score in [0, 1] (``score``) and may embed the KB
ahead of time (``precompute``); retrieval scores and mention priors (priors.py) are mixed in by wrappers. Models load when the scorer is built, once per model and device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..errors import ConfigError
from ..types import MentionCandidates
from .cross_encoder import CrossEncoderScorer
from .dense import DenseScorer
from .gliclass import GliclassLinkScorer
from .gliner import GlinerLinkScorer
from .inputs import with_retrieval
from .priors import MentionPriors


class Scorer(Protocol):
    def precompute(self, batch_size: int = 64, progress: bool = False) -> int: ...

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]: ...


def _token(config) -> str | None:
    return getattr(config, "token", None) or getattr(config, "huggingface_token", None)


DENSE_RETRIEVAL_WEIGHT = 0.8


def _dense(config, template: str, kb, max_labels: int | None) -> DenseScorer:
    weight = DENSE_RETRIEVAL_WEIGHT if config.retrieval_weight is None else config.retrieval_weight
    return DenseScorer(kb, config.model_name, template, device=config.device, max_length=config.max_length or 256,
                       context_chars=config.context_chars, retrieval_weight=weight,
                       batch_size=config.batch_size, hierarchy=config.hierarchy, support_weight=config.support_weight,
                       quantize=config.quantize, runtime=config.runtime)


def _gliner(config, template: str, kb, max_labels: int | None) -> GlinerLinkScorer:
    return GlinerLinkScorer(kb, config.model_name, template, device=config.device, max_length=config.max_length,
                            batch_size=config.batch_size, token=_token(config),
                            max_labels=max_labels or getattr(config, "max_labels", None),
                            use_precomputed=getattr(config, "use_precomputed_embeddings", True),
                            cache_embeddings=getattr(config, "cache_embeddings", False), quantize=config.quantize)


def _cross_encoder(config, template: str, kb, max_labels: int | None) -> CrossEncoderScorer:
    return CrossEncoderScorer(config.model_name, template, device=config.device, max_length=config.max_length or 512,
                              batch_size=config.batch_size, token=_token(config),
                              context_chars=getattr(config, "context_chars", 100), quantize=config.quantize,
                              runtime=config.runtime)


def _gliclass(config, template: str, kb, max_labels: int | None) -> GliclassLinkScorer:
    return GliclassLinkScorer(kb, config.model_name, template, device=config.device, max_length=config.max_length or 512,
                              batch_size=config.batch_size, token=_token(config),
                              max_labels=max_labels or getattr(config, "max_labels", None),
                              context_chars=config.context_chars,
                              use_precomputed=getattr(config, "use_precomputed_embeddings", True),
                              cache_embeddings=getattr(config, "cache_embeddings", False), quantize=config.quantize)


BACKENDS: dict[str, Callable[..., Scorer]] = {
    "dense": _dense,
    "gliner": _gliner,
    "cross_encoder": _cross_encoder,
    "gliclass": _gliclass,
}


def make_scorer(backend: str, config, template: str, kb, max_labels: int | None = None) -> Scorer:
    """The scorer of ``backend`` for an L3 or L4 ``config`` (models load here, once)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown linking backend {backend!r}; expected one of {sorted(BACKENDS)}")
    if config.runtime != "torch" and backend not in ("dense", "cross_encoder"):
        raise ConfigError(f"runtime {config.runtime!r} runs the dense and cross_encoder backends, not {backend!r}")
    scorer = BACKENDS[backend](config, template, kb, max_labels)
    weight = getattr(config, "retrieval_weight", None)
    if backend != "dense" and weight:  # a model's scores: ``w * retrieval + (1 - w) * model``
        scorer = MixedScorer(scorer, lambda g, s: with_retrieval(g.candidates, s, weight).astype(np.float32))
    if getattr(config, "priors", None):
        priors, share = MentionPriors.load(config.priors), config.prior_weight
        scorer = MixedScorer(scorer, lambda g, s: priors.mixed(g, s, share, config.prior_min_count))
    return scorer


class MixedScorer:
    """A scorer whose scores of each mention's candidates go through ``mix(group, scores)``."""

    def __init__(self, scorer: Scorer, mix: Callable[[MentionCandidates, np.ndarray], np.ndarray]):
        self.scorer, self.mix = scorer, mix

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        return self.scorer.precompute(batch_size=batch_size, progress=progress)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        scores = self.scorer.score(texts, groups)
        return [[self.mix(g, s) for g, s in zip(per_text, per_scores, strict=True)]
                for per_text, per_scores in zip(groups, scores, strict=True)]
