"""Entity-linking metrics (pure functions) and ``glinker eval``.

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

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .reader import Doc, InputOptions, Reject, iter_items, open_input

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
        precision = _ratio(self.correct, self.predicted)
        recall = _ratio(self.correct, self.gold)
        span_p = _ratio(self.matched_spans, self.predicted_spans)
        span_r = _ratio(self.matched_spans, self.gold_spans)
        out = {
            "docs": self.docs,
            "gold_mentions": self.gold, "nil_mentions": self.nil_gold,
            "predicted_links": self.predicted, "correct_links": self.correct,
            "precision": precision, "recall": recall, "f1": _f1(precision, recall),
            "accuracy@1": recall,
            "nil_linked": self.nil_linked, "nil_accuracy": _ratio(self.nil_gold - self.nil_linked, self.nil_gold),
            "spans": {"precision": span_p, "recall": span_r, "f1": _f1(span_p, span_r)},
        }
        if self.hits:
            out["recall@k"] = {str(k): _ratio(self.hits[k], self.gold) for k in self.ks}
        return out


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def _f1(p: float, r: float) -> float:
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


# --------------------------------------------------------------------------- glinker eval


def _gold_docs(path: str | Path, split: str | None, options: InputOptions) -> Iterator[tuple[Doc, list[GoldMention]]]:
    stream, raw = open_input(path)
    try:
        for item, line, _ in iter_items(stream, options):
            if item is None:
                continue
            if isinstance(item, Reject):
                raise InputError(f"{path}, line {line}: {item.reason}")
            if split is not None and item.record.get("split") != split:
                continue
            mentions = item.record.get("mentions", [])
            try:
                gold = [gold_mention(m) for m in mentions]
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}, line {line}: field 'mentions' must be a list of "
                                 f"{{start, end, entity_id}} objects ({exc!r})") from None
            for g in gold:
                if not 0 <= g.start < g.end <= len(item.text):
                    raise InputError(f"{path}, line {line}: gold span {g.start}:{g.end} is outside the text")
            yield item, gold
    finally:
        stream.close()
        raw.close()


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate(config: str | Path, kb: str | Path, gold_path: str | Path, split: str | None = None,
             gold_mentions: bool = False, batch_size: int = 32, device: str | None = None, limit: int | None = None,
             text_field: str = "text", id_field: str = "doc_id", ks: tuple[int, ...] = KS) -> dict[str, Any]:
    """Run the pipeline over the gold documents and score it (see the module docstring for the rules)."""
    from .pipeline import Linker, linking_only, load_pipeline

    pipeline = load_pipeline(config, device)
    if gold_mentions:
        pipeline = linking_only(pipeline)
    linker = Linker(pipeline, kb)
    tally = Tally(ks=ks)
    layer_seconds: dict[str, float] = {}
    started = time.perf_counter()
    docs = _gold_docs(gold_path, split, InputOptions(text_field=text_field, id_field=id_field))
    if limit is not None:
        docs = (d for _, d in zip(range(limit), docs, strict=False))
    for batch in _batched(docs, batch_size):
        texts = [doc.text for doc, _ in batch]
        entities = [[{"start": g.start, "end": g.end} for g in gold] for _, gold in batch] if gold_mentions else None
        context = linker.run(texts, entities)
        for node, seconds in context.timings().items():
            layer_seconds[node] = layer_seconds.get(node, 0.0) + seconds
        records = context.get(linker.l0_key).entities
        groups = context.get(linker.l2_key).candidates if linker.l2_key else [None] * len(batch)
        for (_, gold), recs, group in zip(batch, records, groups, strict=True):
            preds = [Prediction(r.mention_start, r.mention_end, r.linked_entity.entity_id if r.is_linked else None)
                     for r in recs]
            cands = None if group is None else [
                SpanCandidates(g.mention.start, g.mention.end, tuple(c.entity_id for c in g.candidates)) for g in group]
            tally.add(gold, preds, cands)
    seconds = time.perf_counter() - started
    report = tally.report()
    report.update({
        "mode": "gold_mentions" if gold_mentions else "end_to_end", "split": split,
        "seconds": round(seconds, 3), "docs_per_second": round(report["docs"] / seconds, 3) if seconds else 0.0,
        "layer_seconds": {k: round(v, 3) for k, v in layer_seconds.items()},
    })
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a few aligned lines for people."""
    lines = [f"{report['mode']} on {report['docs']} docs (split {report['split'] or 'all'}): "
             f"{report['gold_mentions']} gold mentions, {report['nil_mentions']} NIL"]
    for name in ("precision", "recall", "f1", "accuracy@1", "nil_accuracy"):
        lines.append(f"  {name:<14}{report[name]:.4f}")
    spans = report["spans"]
    lines.append(f"  spans         P {spans['precision']:.4f}  R {spans['recall']:.4f}  F1 {spans['f1']:.4f}")
    if "recall@k" in report:
        lines.append("  recall@k      " + "  ".join(f"@{k} {v:.4f}" for k, v in report["recall@k"].items()))
    layers = "  ".join(f"{k} {v:.1f}s" for k, v in report["layer_seconds"].items())
    lines.append(f"  time          {report['seconds']:.1f}s ({report['docs_per_second']:.2f} docs/s): {layers}")
    return "\n".join(lines)
