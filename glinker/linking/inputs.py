"""What the linking models read: a mention in its context, a candidate as text or as a KB vector."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from ..templates import render_template
from ..types import Candidate

MENTION_MARKS = ("[", "]")


def context_window(text: str, start: int, end: int, chars: int) -> str:
    """The mention with up to ``chars`` characters each side, cut at word boundaries."""
    left, right = _sides(text, start, end, chars)
    return f"{left}{text[start:end]}{right}"


def marked_context(text: str, start: int, end: int, chars: int) -> str:
    """The context window with the mention between ``MENTION_MARKS``: what a cross-encoder reads, so
    that it knows which words of the context are the mention."""
    left, right = _sides(text, start, end, chars)
    return f"{left}{MENTION_MARKS[0]}{text[start:end]}{MENTION_MARKS[1]}{right}"


def _sides(text: str, start: int, end: int, chars: int) -> tuple[str, str]:
    """Up to ``chars`` characters before and after the mention, cut at word boundaries."""
    left = text[max(0, start - chars) : start]
    right = text[end : end + chars]
    if start - chars > 0 and " " in left:
        left = left[left.index(" ") + 1 :]
    if end + chars < len(text) and " " in right:
        right = right[: right.rindex(" ")]
    return left, right


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


def with_retrieval(candidates: list[Candidate], scores: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` x each candidate's L2 retrieval score (clipped to [0, 1]) + the rest x its model score."""
    retrieval = np.clip(np.array([c.score for c in candidates], dtype=np.float64), 0.0, 1.0)
    return weight * retrieval + (1 - weight) * np.asarray(scores, dtype=np.float64)


def candidate_chunks(candidates: list[Candidate], template: str,
                     size: int | None) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """A mention's distinct candidates (by entity id) in chunks of ``size``: per chunk its distinct
    label texts, the candidate positions it scores and, for each, the index of its label text."""
    positions: dict[str, list[int]] = {}
    for p, c in enumerate(candidates):
        positions.setdefault(c.entity_id, []).append(p)
    keys = list(positions)
    size = size or len(keys)
    for lo in range(0, len(keys), size):
        chunk = keys[lo : lo + size]
        texts = {k: candidate_text(candidates[positions[k][0]], template) for k in chunk}
        classes = {x: i for i, x in enumerate(dict.fromkeys(texts.values()))}
        where = np.array([p for k in chunk for p in positions[k]])
        class_of = np.array([classes[texts[k]] for k in chunk for _ in positions[k]])
        yield list(classes), where, class_of


class CandidateVectors:
    """The label (GLiNER) or class (GLiClass) vectors of candidates for a bi-encoder: the KB's, made once
    for every entity (``use_precomputed``; a candidate missing from the KB is embedded from its own
    fields), or embedded when needed (kept when ``cache``)."""

    def __init__(self, kb, encoder, template: str, use_precomputed: bool = True, cache: bool = False):
        self.kb, self.encoder, self.template = kb, encoder, template
        self.use_precomputed = use_precomputed
        self.cache: dict[str, np.ndarray] | None = {} if cache else None
        if use_precomputed:
            kb.require_vectors(encoder.model_id, "labels", template)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        if not self.use_precomputed:
            return 0
        return len(self.kb.vectors(self.encoder, "labels", self.template, batch_size=batch_size,
                                   progress=progress).matrix)

    def of(self, candidates: list[Candidate]) -> np.ndarray:
        if self.use_precomputed:
            return candidate_vectors(self.kb, self.encoder, "labels", self.template, candidates, self._embed)[0]
        return self._embed([candidate_text(c, self.template) for c in candidates])

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.cache is None:
            return self.encoder.encode(texts)
        missing = [x for x in dict.fromkeys(texts) if x not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.encoder.encode(missing), strict=True))
        return np.stack([self.cache[x] for x in texts])
