"""Zero-shot NER with GLiNER over a batch of texts of any length (the work of the ``l1_gliner`` layer).

Long texts are cut into overlapping word windows (glinker/models/gliner.py); each window keeps the
spans that start in the part it owns, and with ``flat_ner`` the best spans that do not overlap stay.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from .models.gliner import Row, Words, get_gliner


class GlinerNER:
    """Zero-shot NER over a batch of texts of any length; spans are ``(start, end, label, score)``."""

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

    def predict(self, texts: Sequence[str]) -> list[list[tuple[int, int, str, float]]]:
        """Spans of each text, by position (the best label of a span first)."""
        gliner = self.gliner
        words = gliner.words(texts)
        rows, owned, windows_of = self._windows(words)
        found: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]
        lengths = gliner.row_lengths(rows, words)
        batches = gliner.batched(lambda idx: self._decode([rows[i] for i in idx], words), lengths, self.batch_size)
        for idx, decoded in batches:
            for i, spans in zip(idx, decoded, strict=True):
                row, (own_lo, own_hi) = rows[i], owned[i]
                w = words[row.text]
                for span in spans:
                    first, last = row.lo + span.start, row.lo + span.end
                    if own_lo <= first < own_hi:
                        found[row.text].append(
                            (int(w.starts[first]), int(w.ends[last]), span.entity_type, float(span.score))
                        )
        if self.flat_ner:
            found = [_non_overlapping(s, self.multi_label) if n > 1 else s for s, n in zip(found, windows_of, strict=True)]
        return [sorted(spans, key=lambda s: (s[0], s[1], -s[3], s[2])) for spans in found]

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
        """GLiNER's spans of each row (word offsets within the row)."""
        gliner = self.gliner
        batch = gliner.collate(rows, words, self.labels, self.vectors is not None)
        output = gliner.run(batch, self.threshold, self.vectors)
        return gliner.model.decode_batch(output, batch, threshold=self.threshold, flat_ner=self.flat_ner,
                                         multi_label=self.multi_label)


def _non_overlapping(spans: list[tuple[int, int, str, float]], multi_label: bool) -> list[tuple[int, int, str, float]]:
    """Best-scoring spans that do not overlap (the same span with several labels may stay if ``multi_label``)."""
    starts: list[int] = []
    kept: list[tuple[int, int, str, float]] = []
    for span in sorted(spans, key=lambda s: (-s[3], s[0], s[1], s[2])):
        start, end = span[0], span[1]
        pos = bisect.bisect_left(starts, start)
        neighbours = kept[max(0, pos - 1) : pos + 1]
        if all(o[1] <= start or end <= o[0] or (multi_label and (o[0], o[1]) == (start, end)) for o in neighbours):
            starts.insert(pos, start)
            kept.insert(pos, span)
    return kept
