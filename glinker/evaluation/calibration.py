"""Threshold calibration from the scores kept in one run: the P/R/F1 sweep, the best-F1 threshold and
the reliability of link scores.

A mention's decision is its best candidate and that candidate's score; raising the threshold only
unlinks the mentions scored below it. So the sweep over every score seen is exact: each row is what
the pipeline gives when run at that threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .metrics import GoldMention, f1, ratio
from .outcomes import Scored

BINS = 10


def score_points(gold: Sequence[GoldMention], scored: Sequence[Scored]) -> list[tuple[float, bool]]:
    """(score, whether the best candidate is right) of a document's predicted mentions that some threshold
    links; one per span, the first, as the metrics count them."""
    gold_ids: dict[tuple[int, int], tuple[str, ...]] = {}
    for g in gold:
        gold_ids.setdefault((g.start, g.end), g.ids)
    seen, points = set(), []
    for s in scored:
        span = (s.start, s.end)
        if span not in seen and s.score is not None:
            points.append((s.score, s.best_id in gold_ids.get(span, ())))
        seen.add(span)
    return points


def sweep(points: Sequence[tuple[float, bool]], gold: int) -> list[dict[str, Any]]:
    """P/R/F1 at each score seen as the threshold, highest first; ``gold``: non-NIL gold mentions."""
    ordered = sorted(points, key=lambda point: -point[0])
    rows, correct = [], 0
    for i, (score, right) in enumerate(ordered):
        correct += right
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue
        p, r = ratio(correct, i + 1), ratio(correct, gold)
        rows.append({"threshold": score, "links": i + 1, "correct": correct, "precision": p, "recall": r,
                     "f1": f1(p, r)})
    return rows


def at_threshold(rows: Sequence[dict], threshold: float) -> dict[str, Any]:
    """The sweep row in force at ``threshold`` (nothing linked above the highest score)."""
    kept = [row for row in rows if row["threshold"] >= threshold]
    if not kept:
        return {"threshold": threshold, "links": 0, "correct": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    return {**kept[-1], "threshold": threshold}


def best_threshold(rows: Sequence[dict]) -> dict[str, Any] | None:
    """The row of best F1 (the highest threshold among ties), its threshold written as the shortest
    decimal that links the same mentions (above the next lower score)."""
    if not rows:
        return None
    i = max(range(len(rows)), key=lambda j: (rows[j]["f1"], rows[j]["threshold"]))
    lower = rows[i + 1]["threshold"] if i + 1 < len(rows) else 0.0
    return {**rows[i], "score": rows[i]["threshold"], "threshold": _short_between(lower, rows[i]["threshold"])}


def _short_between(lower: float, upper: float) -> float:
    """The shortest decimal in (lower, upper], within a config's [0, 1]."""
    upper = min(upper, 1.0)
    for digits in range(1, 8):
        value = math.floor(upper * 10**digits) / 10**digits
        if lower < value <= upper:
            return value
    return max(upper, 0.0)


def reliability(points: Sequence[tuple[float, bool]], bins: int = BINS) -> dict[str, Any]:
    """Link scores in ``bins`` equal bins over [0, 1]: per bin the mean score and the share right, and
    the expected calibration error (their gap, weighted by the bin's size)."""
    count, total, right = [0] * bins, [0.0] * bins, [0] * bins
    for score, ok in points:
        b = min(max(int(score * bins), 0), bins - 1)
        count[b] += 1
        total[b] += score
        right[b] += ok
    rows = [{"low": b / bins, "high": (b + 1) / bins, "count": count[b],
             "confidence": round(total[b] / count[b], 4) if count[b] else None,
             "accuracy": ratio(right[b], count[b]) if count[b] else None} for b in range(bins)]
    gap = sum(abs(total[b] - right[b]) for b in range(bins))
    return {"bins": rows, "ece": round(gap / len(points), 4) if points else 0.0}


def threshold_report(points: Sequence[tuple[float, bool]], gold: int, current: float | None,
                     node: str | None) -> dict[str, Any]:
    """The sweep, the rows at the current and at the best-F1 threshold, and the reliability of the scores."""
    rows = sweep(points, gold)
    return {"node": node, "current": current, "at_current": None if current is None else at_threshold(rows, current),
            "best": best_threshold(rows), "sweep": rows, "reliability": reliability(points)}
