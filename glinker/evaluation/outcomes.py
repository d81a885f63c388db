"""One outcome for every gold and every predicted mention: what went wrong, and in which layer.

A gold mention and the prediction at exactly its span form one unit; a gold mention without a
prediction at its span is a unit, and so is a prediction at no gold span. Units = gold spans +
predicted spans - matched spans (duplicate spans count once, the first wins, as in the metrics), and
each unit has exactly one category:

- ``correct``: linked to one of the gold ids; a NIL gold mention left unlinked, or not found.
- ``missed_mention``: nothing was found at or across a (non-NIL) gold mention (L1).
- ``partial_span``: a gold mention with no prediction at its span but one overlapping it, or a
  prediction that overlaps a gold mention with other boundaries (L1).
- ``spurious_mention``: a prediction that overlaps no gold mention (L1).
- ``not_in_candidates``: the gold entity is not among the L2 candidates of the span (L2).
- ``wrong_rank``: the gold entity is a candidate but another one is ranked first (L3/L4).
- ``linked_nil``: linked although the gold mention is NIL.
- ``threshold_too_high``: left unlinked although the gold entity was ranked first.

:func:`mention_record` turns a unit into the plain dict that ``glinker eval --json`` writes; the
summaries below (:func:`outcome_counts`, :func:`breakdown`, :func:`inkb_and_nil`,
:func:`recall_curve`) read those dicts, so a saved run can be summarised again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import GoldMention, f1, ratio

CATEGORIES = ("correct", "missed_mention", "partial_span", "spurious_mention", "not_in_candidates",
              "wrong_rank", "linked_nil", "threshold_too_high")
LAYER_OF = {"correct": "-", "missed_mention": "L1", "partial_span": "L1", "spurious_mention": "L1",
            "not_in_candidates": "L2", "wrong_rank": "L3/L4", "linked_nil": "L3/L4 (NIL)",
            "threshold_too_high": "threshold"}
CONTEXT_CHARS = 80
TOP_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class Scored:
    """A predicted mention with its decision kept: the candidate ranked first and its score, so its link
    at any threshold is known without running the pipeline again."""

    start: int
    end: int
    best_id: str | None = None
    score: float | None = None  # None: linked at no threshold (nothing scored, or no deciding layer)
    l2_ids: tuple[str, ...] = ()  # L2 candidates, retrieval order
    ranked: tuple[tuple[str, float], ...] = ()  # scored candidates, best score first

    def link(self, threshold: float) -> str | None:
        return self.best_id if self.score is not None and self.score >= threshold else None


@dataclass(frozen=True, slots=True)
class Unit:
    category: str
    gold: GoldMention | None
    predicted: Scored | None
    link: str | None = None


def classify(gold: Sequence[GoldMention], predicted: Sequence[Scored], threshold: float) -> list[Unit]:
    """The units of one document: gold mentions first (in order), then predictions at no gold span."""
    golds: dict[tuple[int, int], GoldMention] = {}
    for g in gold:
        golds.setdefault((g.start, g.end), g)
    preds: dict[tuple[int, int], Scored] = {}
    for p in predicted:
        preds.setdefault((p.start, p.end), p)
    units = []
    for span, g in golds.items():
        p = preds.get(span)
        if p is not None:
            units.append(_pair(g, p, threshold))
        elif _overlaps(span, preds):
            units.append(Unit("partial_span", g, None))
        else:
            units.append(Unit("correct" if g.nil else "missed_mention", g, None))
    for span, p in preds.items():
        if span not in golds:
            category = "partial_span" if _overlaps(span, golds) else "spurious_mention"
            units.append(Unit(category, None, p, p.link(threshold)))
    return units


def _pair(g: GoldMention, p: Scored, threshold: float) -> Unit:
    link = p.link(threshold)
    if g.nil:
        category = "linked_nil" if link is not None else "correct"
    elif link in g.ids:
        category = "correct"
    elif not any(i in g.ids for i in p.l2_ids):
        category = "not_in_candidates"
    elif link is None and p.best_id in g.ids:
        category = "threshold_too_high"
    else:
        category = "wrong_rank"
    return Unit(category, g, p, link)


def _overlaps(span: tuple[int, int], others: Iterable[tuple[int, int]]) -> bool:
    return any(start < span[1] and span[0] < end for start, end in others)


def _rank(ids: Sequence[str], gold: tuple[str, ...]) -> int | None:
    """1-based position of the first gold id in ``ids``."""
    return next((r for r, i in enumerate(ids, 1) if i in gold), None)


def _score_rank(ranked: Sequence[tuple[str, float]], gold: tuple[str, ...]) -> int | None:
    """1-based rank of the best-scored gold id: one more than the candidates scored strictly higher."""
    scores = [s for i, s in ranked if i in gold]
    return 1 + sum(s > max(scores) for _, s in ranked) if scores else None


def mention_record(unit: Unit, doc_id: Any, text: str, describe: Callable[[str], tuple[str, str]],
                   labels: dict[str, str]) -> dict[str, Any]:
    """The unit as ``--json`` writes it; ``describe(id)`` gives an entity's (label, entity_type) from the KB,
    ``labels`` the candidate labels of the document."""
    g, p = unit.gold, unit.predicted
    start, end = (g.start, g.end) if g is not None else (p.start, p.end)
    record: dict[str, Any] = {
        "doc": doc_id, "category": unit.category, "start": start, "end": end, "text": text[start:end],
        "left": text[max(0, start - CONTEXT_CHARS):start], "right": text[end:end + CONTEXT_CHARS],
        "gold": None, "predicted": None, "gold_rank": None, "l2_rank": None, "candidates": [],
    }
    if g is not None:
        label, kind = describe(g.ids[0]) if g.ids else (None, "NIL")
        record["gold"] = {"start": g.start, "end": g.end, "ids": list(g.ids), "label": label, "type": kind}
    if p is not None:
        record["predicted"] = {"start": p.start, "end": p.end, "entity_id": unit.link, "best_id": p.best_id,
                               "label": labels.get(p.best_id) if p.best_id else None, "score": p.score,
                               "num_candidates": len(p.l2_ids)}
        record["candidates"] = [[i, labels.get(i, ""), s] for i, s in p.ranked[:TOP_CANDIDATES]]
        if g is not None and g.ids:
            record["gold_rank"], record["l2_rank"] = _score_rank(p.ranked, g.ids), _rank(p.l2_ids, g.ids)
    return record


# --------------------------------------------------------------------------- summaries of the records


def outcome_counts(mentions: Iterable[dict]) -> dict[str, int]:
    counts = dict.fromkeys(CATEGORIES, 0)
    for m in mentions:
        counts[m["category"]] += 1
    return counts


def outcome_check(counts: dict[str, int], spans: dict[str, int]) -> dict[str, Any]:
    """Do the categories add up to gold + predicted - matched spans (counted by the metrics)?"""
    units = spans["gold"] + spans["predicted"] - spans["matched"]
    total = sum(counts.values())
    return {"gold": spans["gold"], "predicted": spans["predicted"], "matched": spans["matched"],
            "units": units, "sum": total, "ok": units == total}


def breakdown(mentions: Iterable[dict], key: Callable[[dict], Any]) -> dict[str, dict[str, int]]:
    """Category counts per value of ``key`` (most units first)."""
    table: dict[str, dict[str, int]] = {}
    for m in mentions:
        row = table.setdefault(str(key(m)), dict.fromkeys(CATEGORIES, 0))
        row[m["category"]] += 1
    return dict(sorted(table.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def gold_type(m: dict) -> str:
    return (m["gold"]["type"] or "(no type)") if m["gold"] is not None else "(no gold)"


def inkb_and_nil(mentions: Sequence[dict]) -> dict[str, dict[str, float]]:
    """InKB micro P/R/F1 (links on NIL gold spans left out) and NIL P/R (unlinked predictions as NIL answers)."""
    links = [m for m in mentions if m["predicted"] and m["predicted"]["entity_id"] is not None]
    on_nil = sum(m["gold"] is not None and not m["gold"]["ids"] for m in links)
    correct = sum(m["gold"] is not None and m["predicted"]["entity_id"] in m["gold"]["ids"] for m in links)
    in_kb = sum(m["gold"] is not None and bool(m["gold"]["ids"]) for m in mentions)
    unlinked = [m for m in mentions if m["predicted"] and m["predicted"]["entity_id"] is None]
    nil_right = sum(m["gold"] is not None and not m["gold"]["ids"] for m in unlinked)
    nil_gold = sum(m["gold"] is not None and not m["gold"]["ids"] for m in mentions)
    p, r = ratio(correct, len(links) - on_nil), ratio(correct, in_kb)
    return {"inkb": {"precision": p, "recall": r, "f1": f1(p, r)},
            "nil": {"precision": ratio(nil_right, len(unlinked)), "recall": ratio(nil_right, nil_gold)}}


def recall_curve(mentions: Sequence[dict]) -> list[float]:
    """L2 recall@k for k = 1 ... the most candidates a mention had: the ceiling of any L3."""
    ranks = [m["l2_rank"] for m in mentions if m["gold"] is not None and m["gold"]["ids"]]
    depth = max((m["predicted"]["num_candidates"] for m in mentions if m["predicted"]), default=0)
    hits = [0] * (depth + 1)
    for rank in ranks:
        if rank is not None:
            hits[rank] += 1
    curve, found = [], 0
    for k in range(1, depth + 1):
        found += hits[k]
        curve.append(ratio(found, len(ranks)))
    return curve


def summary(mentions: Sequence[dict], spans: dict[str, int], group_by: str | None = None) -> dict[str, Any]:
    """Every summary of the records, as ``glinker eval`` reports them (``spans``: the metrics' span counts)."""
    counts = outcome_counts(mentions)
    out: dict[str, Any] = {"outcomes": counts, "outcome_check": outcome_check(counts, spans),
                           "outcomes_by_type": breakdown(mentions, gold_type)}
    if group_by is not None:
        out["group_by"] = group_by
        out["outcomes_by_group"] = breakdown(mentions, lambda m: m.get("group"))
    return {**out, **inkb_and_nil(mentions), "recall_curve": recall_curve(mentions)}
