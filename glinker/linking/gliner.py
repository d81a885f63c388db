"""GLiNER span linking (backend "gliner"): each mention span, fixed, scored against its own candidates.

Span representations are computed for the mention spans alone (glinker/models/gliner.py
``span_logits``); token-level models score the whole mention as gliner's token decoder scores a
span. A mention that covers no word (only whitespace) is an InputError naming it. Bi-encoders take
their label vectors from the KB (``use_precomputed``) or embed them with dynamic padding;
uni-encoders put a mention's candidates in the prompt, ``max_labels`` at a time, with as much text
around the mention as fits.
"""

from __future__ import annotations

import numpy as np

from ..models.gliner import GlinerModel, Row, Words, get_gliner, label_encoder
from ..types import Candidate, MentionCandidates
from .inputs import CandidateVectors, candidate_chunks


class GlinerLinkScorer:
    """L3/L4 backend "gliner": each mention span, fixed, scored against its own candidates only."""

    def __init__(self, kb, model_name: str | GlinerModel, template: str, device: str = "cpu",
                 max_length: int | None = 512, batch_size: int = 32, token: str | None = None,
                 max_labels: int | None = None, use_precomputed: bool = True, cache_embeddings: bool = False,
                 quantize: str = "none"):
        """``model_name``: a GLiNER's name, or one already loaded (e.g. the model ``glinker train`` trains)."""
        loaded = isinstance(model_name, GlinerModel)
        self.gliner = model_name if loaded else get_gliner(model_name, device=device, token=token, quantize=quantize)
        self.template = template
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_labels = max_labels
        self.labels = None
        if self.gliner.is_bi:
            self.labels = CandidateVectors(kb, label_encoder(self.gliner), template, use_precomputed, cache_embeddings)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Embed every KB entity with the label encoder (bi-encoders with precomputed embeddings only)."""
        return 0 if self.labels is None else self.labels.precompute(batch_size, progress)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention."""
        out = [[np.zeros(len(g.candidates), dtype=np.float32) for g in per_text] for per_text in groups]
        if not any(g.candidates for per_text in groups for g in per_text):
            return out
        words = self.gliner.words(texts)
        if self.gliner.is_bi:
            rows, candidates = self._bi_rows(groups, words)
        else:
            rows, candidates = self._uni_rows(groups, words), {}
        lengths = self.gliner.row_lengths(rows, words)
        batches = self.gliner.batched(lambda idx: self._probabilities([rows[i] for i in idx], words, candidates),
                                      lengths, self.batch_size)
        for idx, probs in batches:
            for b, row in enumerate(rows[i] for i in idx):
                for s, (m, positions, labels) in enumerate(row.targets):
                    out[row.text][m][positions] = probs[b, s, labels]
        return out

    def _probabilities(self, rows: list[Row], words: list[Words], candidates: dict[str, Candidate]) -> np.ndarray:
        """Probabilities ``[B, S, C]`` of each row's spans against the row's labels."""
        vectors, mask = self._row_vectors(rows, candidates) if self.gliner.is_bi else (None, None)
        return self.gliner.torch.sigmoid(self.gliner.span_logits(rows, words, vectors, mask).float()).cpu().numpy()

    def _bi_rows(self, groups, words: list[Words]) -> tuple[list[Row], dict[str, Candidate]]:
        """One row per text window holding mentions; its labels are their candidates (each once)."""
        gliner = self.gliner
        budget = gliner.text_budget(self.max_length, 0, "")
        rows: list[Row] = []
        candidates: dict[str, Candidate] = {}
        for t, per_text in enumerate(groups):
            if not any(g.candidates for g in per_text):
                continue
            w = words[t]
            text_rows = [Row(t, lo, hi) for lo, hi in gliner.windows(w, budget, 2 * gliner.max_width)]
            label_index: list[dict[str, int]] = [{} for _ in text_rows]
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                first, last = _mention_words(gliner, w, t, m, g)
                k = _best_window(text_rows, first, last)
                row, index = text_rows[k], label_index[k]
                last = min(last, row.hi - 1)
                for c in g.candidates:
                    if c.entity_id not in index:
                        index[c.entity_id] = len(row.labels)
                        row.labels.append(c.entity_id)
                    candidates.setdefault(c.entity_id, c)
                row.spans.append((first - row.lo, last - row.lo))
                row.targets.append((m, np.arange(len(g.candidates)), np.array([index[c.entity_id] for c in g.candidates])))
            rows += [r for r in text_rows if r.spans]
        return rows, candidates

    def _uni_rows(self, groups, words: list[Words]) -> list[Row]:
        """One row per mention and chunk of at most ``max_labels`` of its distinct candidates, in the prompt,
        with as much text around the mention as fits."""
        gliner = self.gliner
        rows: list[Row] = []
        for t, per_text in enumerate(groups):
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                first, last = _mention_words(gliner, words[t], t, m, g)
                for labels, where, label_of in candidate_chunks(g.candidates, self.template, self.max_labels):
                    row = Row(t, first, last + 1, labels=labels)
                    row.spans.append((0, last - first))
                    row.targets.append((m, where, label_of))
                    rows.append(row)
        for row, prompt in zip(rows, gliner.prompt_tokens([r.labels for r in rows]), strict=True):
            budget = gliner.text_budget(self.max_length, prompt, f"{len(row.labels)} candidates")
            first, last = row.lo, row.hi - 1
            row.lo, row.hi = gliner.window_around(words[row.text], first, last, budget)
            row.prompt = prompt
            row.spans[0] = (first - row.lo, last - row.lo)
        return rows

    def _row_vectors(self, rows: list[Row], candidates: dict[str, Candidate]):
        """Label vectors ``[B, C, D]`` of each row's candidates, and the mask of real labels."""
        torch = self.gliner.torch
        keys = list(dict.fromkeys(k for r in rows for k in r.labels))
        vectors = self.labels.of([candidates[k] for k in keys])
        pad = len(keys)
        position = {k: i for i, k in enumerate(keys)}
        width = max(len(r.labels) for r in rows)
        gather = np.full((len(rows), width), pad, dtype=np.int64)
        for b, r in enumerate(rows):
            gather[b, : len(r.labels)] = [position[k] for k in r.labels]
        table = torch.from_numpy(np.vstack([vectors, np.zeros((1, vectors.shape[1]), dtype=np.float32)]))
        gather_t = torch.from_numpy(gather)
        return table[gather_t].to(self.gliner.device), (gather_t != pad).to(self.gliner.device)


def _mention_words(gliner: GlinerModel, words: Words, t: int, m: int, g: MentionCandidates) -> tuple[int, int]:
    """The words GLiNER scores for mention ``m`` of text ``t`` (an InputError naming it if it covers none)."""
    where = f"texts[{t}] mention {m} {g.mention.text!r}"
    return gliner.mention_words(words, g.mention.start, g.mention.end, where)


def _best_window(rows: list[Row], first: int, last: int) -> int:
    """The window holding words ``first..last`` farthest from its edges (else the one holding ``first``)."""
    best, margin = None, -1
    for k, r in enumerate(rows):
        if r.lo <= first and last < r.hi and min(first - r.lo, r.hi - 1 - last) > margin:
            best, margin = k, min(first - r.lo, r.hi - 1 - last)
    if best is None:
        best = max(k for k, r in enumerate(rows) if r.lo <= first)
    return best
