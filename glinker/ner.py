"""Zero-shot NER with GLiNER over a batch of texts of any length (the work of the ``l1_gliner`` layer).

Span-level and token-level models alike. Long texts are cut into overlapping word windows
(glinker/models/gliner.py); each window keeps the spans that start in the part it owns. Where
windows meet, the best spans that do not overlap (``flat_ner``) or do not cross (nested) stay, as in
gliner's decoding of one window. A GLiNER-decoder's generated label is kept with each span.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .models.gliner import Row, Words, get_gliner


class NerSpan(NamedTuple):
    """A mention found by GLiNER: characters ``[start, end)``, one of the labels, its score, and the label a
    GLiNER-decoder generated for it (None for other models)."""

    start: int
    end: int
    label: str
    score: float
    generated_label: str | None = None


class GlinerNER:
    """Zero-shot NER over a batch of texts of any length."""

    def __init__(self, name: str, labels: Sequence[str], device: str = "cpu", token: str | None = None,
                 threshold: float = 0.3, flat_ner: bool = True, multi_label: bool = False, batch_size: int = 16,
                 max_length: int | None = 512, overlap: int = 32, use_precomputed: bool = True,
                 quantize: str = "none"):
        self.gliner = get_gliner(name, device=device, token=token, quantize=quantize)
        self.labels = list(dict.fromkeys(labels))
        self.threshold = threshold
        self.flat_ner = flat_ner
        self.multi_label = multi_label
        self.batch_size = batch_size
        self.overlap = overlap
        prompt = self.gliner.prompt_tokens([self.labels])[0]
        self.budget = self.gliner.text_budget(max_length, prompt, f"{len(self.labels)} labels")
        self.vectors = None
        if self.gliner.is_bi and use_precomputed:
            self.vectors = self.gliner.torch.from_numpy(self.gliner.encode_labels(self.labels)).to(device)

    def predict(self, texts: Sequence[str]) -> list[list[NerSpan]]:
        """Spans of each text, by position (the best label of a span first)."""
        gliner = self.gliner
        words = gliner.words(texts)
        rows, owned, windows_of = self._windows(words)
        found: list[list[NerSpan]] = [[] for _ in texts]
        lengths = gliner.row_lengths(rows, words)
        batches = gliner.batched(lambda idx: self._decode([rows[i] for i in idx], words), lengths, self.batch_size)
        for idx, decoded in batches:
            for i, spans in zip(idx, decoded, strict=True):
                row, (own_lo, own_hi) = rows[i], owned[i]
                for span in spans:
                    if own_lo <= row.lo + span.start < own_hi:
                        found[row.text].append(self._ner_span(span, words[row.text], row.lo))
        conflict = _overlap if self.flat_ner else _crossing
        found = [_greedy(s, conflict, self.multi_label) if n > 1 else s for s, n in zip(found, windows_of, strict=True)]
        return [sorted(spans, key=lambda s: (s.start, s.end, -s.score, s.label)) for spans in found]

    def _windows(self, words: list[Words]) -> tuple[list[Row], list[tuple[int, int]], list[int]]:
        """One row per window of each text, the words each window owns (half of every overlap), and
        the number of windows per text."""
        rows, owned, windows_of = [], [], []
        for t, w in enumerate(words):
            wins = self.gliner.windows(w, self.budget, self.overlap)
            windows_of.append(len(wins))
            for k, (lo, hi) in enumerate(wins):
                own_lo = 0 if k == 0 else (wins[k - 1][1] + lo) // 2
                own_hi = len(w) if k == len(wins) - 1 else (hi + wins[k + 1][0]) // 2
                rows.append(Row(t, lo, hi))
                owned.append((own_lo, own_hi))
        return rows, owned, windows_of

    def _decode(self, rows: list[Row], words: list[Words]) -> list:
        """GLiNER's spans of each row (word offsets within the row), decoded by gliner itself."""
        gliner = self.gliner
        batch = gliner.collate(rows, words, self.labels, self.vectors is not None)
        output = gliner.run(batch, self.threshold, self.vectors)
        return gliner.model.decode_batch(output, batch, threshold=self.threshold, flat_ner=self.flat_ner,
                                         multi_label=self.multi_label)

    def _ner_span(self, span, words: Words, lo: int) -> NerSpan:
        """A decoded span of the window starting at word ``lo``, in characters of the text.

        A GLiNER-decoder generates labels per span ("span" mode) or per prompt label ("prompt" mode,
        where gliner puts the generated label in place of ours); the label stays one of ours.
        """
        start, end = int(words.starts[lo + span.start]), int(words.ends[lo + span.end])
        if not self.gliner.generates_labels:
            return NerSpan(start, end, span.entity_type, float(span.score))
        if span.generated_labels:
            generated = span.generated_labels[0]
        else:
            generated = span.entity_type if self.gliner.config.decoder_mode == "prompt" else None
        return NerSpan(start, end, self.labels[span.class_index], float(span.score), generated)


def _overlap(a: NerSpan, b: NerSpan) -> bool:
    return a.start < b.end and b.start < a.end


def _crossing(a: NerSpan, b: NerSpan) -> bool:
    """Overlapping, neither inside the other (the same span counts as overlapping)."""
    nested = (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)
    return _overlap(a, b) and (not nested or (a.start, a.end) == (b.start, b.end))


def _greedy(spans: list[NerSpan], conflict: Callable[[NerSpan, NerSpan], bool], multi_label: bool) -> list[NerSpan]:
    """gliner's greedy search over a whole text: by descending score, each span is kept unless it conflicts
    with one kept before (the same span with another label does not if ``multi_label``)."""
    widest = max((s.end - s.start for s in spans), default=0)
    starts: list[int] = []
    kept: list[NerSpan] = []
    for span in sorted(spans, key=lambda s: (-s.score, s.start, s.end, s.label)):
        near = kept[bisect.bisect_left(starts, span.start - widest) : bisect.bisect_left(starts, span.end)]
        if all(not conflict(span, o) or (multi_label and (o.start, o.end) == (span.start, span.end)) for o in near):
            pos = bisect.bisect_left(starts, span.start)
            starts.insert(pos, span.start)
            kept.insert(pos, span)
    return kept
