"""``glinker eval``: run a pipeline over gold-annotated documents, score it and explain its errors.

The pipeline runs once, linking at threshold 0 (its deciding node's threshold and the aggregator's
min_confidence lowered), so every mention keeps its best candidate and that candidate's score. The
links at the configured threshold are read from them, which is what running at that threshold gives
(a mention's best candidate does not depend on the threshold), and so is the sweep over all others.
Counting rules: glinker/evaluation/metrics.py; outcome categories: glinker/evaluation/outcomes.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..evaluation.calibration import score_points, threshold_report
from ..evaluation.metrics import KS, GoldMention, Prediction, SpanCandidates, Tally, gold_mention, score
from ..evaluation.outcomes import Scored, classify, mention_record, summary
from ..evaluation.text import outcome_lines, threshold_lines
from ..evaluation.thresholds import deciding_node, keeps_unlinked, link_threshold, with_threshold
from .reader import Doc, InputOptions, Reject, iter_items, open_input

__all__ = ["KS", "GoldMention", "Prediction", "SpanCandidates", "Tally", "evaluate", "format_report", "gold_mention",
           "score"]


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


def _read_docs(path: str | Path, split: str | None, limit: int | None,
               options: InputOptions) -> list[tuple[Doc, list[GoldMention]]]:
    docs = _gold_docs(path, split, options)
    return list(docs if limit is None else (d for _, d in zip(range(limit), docs, strict=False)))


def scored_mention(record, groups) -> Scored:
    """An L0 record with its decision: the linked entity (the run links at threshold 0), else the
    best-scored candidate with no score (no threshold links it)."""
    own = record.mention_index is not None and groups is not None
    candidates = groups[record.mention_index].candidates if own else record.candidates
    ranked = sorted(record.candidate_scores.items(), key=lambda kv: -kv[1])
    if record.is_linked:
        best, value = record.linked_entity.entity_id, float(record.linked_entity.score)
    else:
        best = ranked[0][0] if ranked else (candidates[0].entity_id if candidates else None)
        value = None
    return Scored(record.mention_start, record.mention_end, best, value, tuple(c.entity_id for c in candidates),
                  tuple((i, round(float(s), 4)) for i, s in ranked))


def kb_describer(store) -> Callable[[str], tuple[str | None, str]]:
    """(label, entity_type) of an entity id in the loaded KB."""
    @cache
    def describe(entity_id: str) -> tuple[str | None, str]:
        row = store.row_of(entity_id)
        return (None, "(not in KB)") if row is None else (store.label(row), store.types[row])
    return describe


@dataclass
class EvalRun:
    """What one evaluation has counted: the metrics' tally, one record per outcome unit, and the kept
    (score, right) points of the threshold sweep."""

    threshold: float | None
    describe: Callable[[str], tuple[str | None, str]]
    group_by: str | None = None
    tally: Tally = field(default_factory=Tally)
    keep_unlinked: bool = True  # the aggregator's include_unlinked: else records unlinked at the threshold drop out
    mentions: list[dict] = field(default_factory=list)
    points: list[tuple[float, bool]] = field(default_factory=list)

    def add(self, doc: Doc, gold: list[GoldMention], records: list, groups: list | None) -> None:
        """Count one document from its L0 records and L2 groups."""
        cands = None if groups is None else [
            SpanCandidates(g.mention.start, g.mention.end, tuple(c.entity_id for c in g.candidates)) for g in groups]
        labels = {c.entity_id: c.label for g in groups or () for c in g.candidates}
        self.add_scored(doc, gold, [scored_mention(r, groups) for r in records], labels, cands)

    def add_scored(self, doc: Doc, gold: list[GoldMention], scored: list[Scored], labels: dict[str, str],
                   candidates: list[SpanCandidates] | None = None) -> None:
        """Count one document from its predicted mentions with their decisions."""
        threshold = self.threshold if self.threshold is not None else 0.0
        self.points += score_points(gold, scored)
        if not self.keep_unlinked:
            scored = [s for s in scored if s.link(threshold) is not None]
        self.tally.add(gold, [Prediction(s.start, s.end, s.link(threshold)) for s in scored], candidates)
        for unit in classify(gold, scored, threshold):
            record = mention_record(unit, doc.id, doc.text, self.describe, labels)
            if self.group_by is not None:
                record["group"] = doc.record.get(self.group_by)
            self.mentions.append(record)

    def report(self, node: str | None) -> dict[str, Any]:
        report = self.tally.report()
        report.update(summary(self.mentions, report["spans"], self.group_by))
        report["threshold"] = threshold_report(self.points, report["gold_mentions"], self.threshold, node)
        report["mentions"] = self.mentions
        return report


def evaluate(config: str | Path, kb: str | Path, gold_path: str | Path, split: str | None = None,
             gold_mentions: bool = False, batch_size: int = 32, device: str | None = None, limit: int | None = None,
             text_field: str = "text", id_field: str = "doc_id", ks: tuple[int, ...] = KS,
             group_by: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the pipeline over the gold documents and score it (see the module docstring)."""
    from tqdm import tqdm

    from .pipeline import Linker, linking_only, load_pipeline
    from .runner import add_layer_seconds

    pipeline = load_pipeline(config, device)
    if gold_mentions:
        pipeline = linking_only(pipeline)
    linker = Linker(with_threshold(pipeline, 0.0), kb)
    run = EvalRun(link_threshold(pipeline), kb_describer(linker.executor.kb.store), group_by, Tally(ks=ks),
                  keeps_unlinked(pipeline))
    docs = _read_docs(gold_path, split, limit, InputOptions(text_field=text_field, id_field=id_field))
    layer_seconds: dict[str, float] = {}
    started = time.perf_counter()
    with tqdm(total=len(docs), unit="doc", desc="eval", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for batch in _batched(iter(docs), batch_size):
            entities = [[{"start": g.start, "end": g.end} for g in gold] for _, gold in batch] if gold_mentions else None
            context = linker.run([doc.text for doc, _ in batch], entities)
            add_layer_seconds(layer_seconds, context.timings())
            groups = context.get(linker.l2_key).candidates if linker.l2_key else [None] * len(batch)
            for (doc, gold), records, group in zip(batch, context.get(linker.l0_key).entities, groups, strict=True):
                run.add(doc, gold, records, group)
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    report = run.report(deciding_node(pipeline))
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
    return "\n".join(lines + outcome_lines(report) + threshold_lines(report))
