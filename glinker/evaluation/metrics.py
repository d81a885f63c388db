"""Entity-linking metrics (pure functions) over gold mentions, predictions and L2 candidates.

Counting rules:

- A predicted link ``(start, end, entity_id)`` is correct when a gold mention has exactly that span
  and ``entity_id`` is one of its ids (a composite mention such as "breast and ovarian cancer" has
  several; any of them counts).
- Precision = correct links / predicted links; recall = correct links / gold mentions that are not
  NIL; F1 their harmonic mean.
- NIL gold mentions (entity id "NIL", or no id) are not in recall's denominator. A link predicted on
  a NIL mention's span is a false positive; leaving it unlinked, or not finding it, costs nothing.
  ``nil_accuracy`` is the share of NIL gold mentions left unlinked.
- ``spans``: mention detection alone, predicted spans (linked or not) against all gold spans.
- ``accuracy@1``: correct links / non-NIL gold mentions (= linking recall); it is the headline number
  with ``--gold-mentions``, where every gold span is given to the pipeline.
- ``recall@k``: share of non-NIL gold mentions with a correct id among the first k L2 candidates of
  exactly that span (a gold mention the pipeline did not find is a miss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

KS = (1, 5, 10, 30)
NIL = "NIL"


@dataclass(frozen=True, slots=True)
class GoldMention:
    start: int
    end: int
    ids: tuple[str, ...]  # empty for NIL

    @property
    def nil(self) -> bool:
        return not self.ids


@dataclass(frozen=True, slots=True)
class Prediction:
    start: int
    end: int
    entity_id: str | None  # None: found but left unlinked


@dataclass(frozen=True, slots=True)
class SpanCandidates:
    start: int
    end: int
    ids: tuple[str, ...]  # L2 candidates, best first


def gold_mention(raw: dict[str, Any]) -> GoldMention:
    """A gold mention from ``{start, end, entity_id, entity_ids?}``; "NIL" or no id means NIL."""
    ids = raw.get("entity_ids") or ([raw["entity_id"]] if raw.get("entity_id") is not None else [])
    return GoldMention(int(raw["start"]), int(raw["end"]), tuple(i for i in ids if i != NIL))


@dataclass
class Tally:
    """Counts over documents; :meth:`report` turns them into metrics."""

    ks: tuple[int, ...] = KS
    gold: int = 0
    nil_gold: int = 0
    predicted: int = 0
    correct: int = 0
    nil_linked: int = 0
    gold_spans: int = 0
    predicted_spans: int = 0
    matched_spans: int = 0
    docs: int = 0
    hits: dict[int, int] = field(default_factory=dict)

    def add(self, gold: Sequence[GoldMention], predictions: Sequence[Prediction],
            candidates: Sequence[SpanCandidates] | None = None) -> None:
        """Count one document. Duplicate spans count once (the first prediction of a span wins)."""
        by_span = {}
        for g in gold:
            by_span.setdefault((g.start, g.end), g)
        preds = {}
        for p in predictions:
            preds.setdefault((p.start, p.end), p)
        self.docs += 1
        self.gold_spans += len(by_span)
        self.predicted_spans += len(preds)
        self.matched_spans += len(by_span.keys() & preds.keys())
        for span, g in by_span.items():
            p = preds.get(span)
            if g.nil:
                self.nil_gold += 1
                self.nil_linked += p is not None and p.entity_id is not None
            else:
                self.gold += 1
                self.correct += p is not None and p.entity_id in g.ids
        self.predicted += sum(p.entity_id is not None for p in preds.values())
        if candidates is not None:
            ranked = {}
            for c in candidates:
                ranked.setdefault((c.start, c.end), c.ids)
            for span, g in by_span.items():
                if g.nil:
                    continue
                ids = ranked.get(span, ())
                first = next((rank for rank, i in enumerate(ids) if i in g.ids), None)
                for k in self.ks:
                    self.hits[k] = self.hits.get(k, 0) + (first is not None and first < k)

    def report(self) -> dict[str, Any]:
        precision = ratio(self.correct, self.predicted)
        recall = ratio(self.correct, self.gold)
        span_p = ratio(self.matched_spans, self.predicted_spans)
        span_r = ratio(self.matched_spans, self.gold_spans)
        out = {
            "docs": self.docs,
            "gold_mentions": self.gold, "nil_mentions": self.nil_gold,
            "predicted_links": self.predicted, "correct_links": self.correct,
            "precision": precision, "recall": recall, "f1": f1(precision, recall),
            "accuracy@1": recall,
            "nil_linked": self.nil_linked, "nil_accuracy": ratio(self.nil_gold - self.nil_linked, self.nil_gold),
            "spans": {"precision": span_p, "recall": span_r, "f1": f1(span_p, span_r), "gold": self.gold_spans,
                      "predicted": self.predicted_spans, "matched": self.matched_spans},
        }
        if self.hits:
            out["recall@k"] = {str(k): ratio(self.hits[k], self.gold) for k in self.ks}
        return out


def ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def f1(p: float, r: float) -> float:
    return round(2 * p * r / (p + r), 4) if p + r else 0.0


def score(gold_docs: Iterable[Sequence[GoldMention]], predicted_docs: Iterable[Sequence[Prediction]],
          candidate_docs: Iterable[Sequence[SpanCandidates]] | None = None, ks: tuple[int, ...] = KS) -> dict[str, Any]:
    """Metrics over aligned per-document lists of gold mentions, predictions and (optionally) candidates."""
    tally = Tally(ks=ks)
    gold_docs, predicted_docs = list(gold_docs), list(predicted_docs)
    if len(gold_docs) != len(predicted_docs):
        raise InputError(f"{len(gold_docs)} gold documents but {len(predicted_docs)} predicted")
    candidate_docs = list(candidate_docs) if candidate_docs is not None else [None] * len(gold_docs)
    for gold, preds, cands in zip(gold_docs, predicted_docs, candidate_docs, strict=True):
        tally.add(gold, preds, cands)
    return tally.report()
