"""``glinker eval --compare A.json B.json``: which mentions changed outcome between two saved runs.

A unit is known by its document and its gold span, or, for a prediction at no gold span, its
predicted span; a unit that only one run has is ``absent`` in the other. The net effect per category
is B's count minus A's; a change to ``correct`` is a fix, a change from it a break.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError
from .outcomes import CATEGORIES

ABSENT = "absent"
HEADLINE = ("precision", "recall", "f1", "accuracy@1")


def load_run(path: str | Path) -> dict[str, Any]:
    """A saved ``glinker eval --json`` output (one JSON object)."""
    try:
        run = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a glinker eval --json output ({exc})") from None
    if not isinstance(run, dict) or not isinstance(run.get("mentions"), list) or "outcomes" not in run:
        raise InputError(f"{path}: no 'mentions' and 'outcomes' fields: save the output of glinker eval --json")
    return run


def unit_key(m: dict) -> tuple:
    gold = m["gold"]
    if gold is not None:
        return "gold", m["doc"], gold["start"], gold["end"]
    return "predicted", m["doc"], m["predicted"]["start"], m["predicted"]["end"]


def compare(a: dict[str, Any], b: dict[str, Any], names: Sequence[str] = ("A", "B")) -> dict[str, Any]:
    """The changed units (with both runs' records), the transitions between categories and the net effect."""
    units_a = {unit_key(m): m for m in a["mentions"]}
    units_b = {unit_key(m): m for m in b["mentions"]}
    changed, transitions = [], Counter()
    for key in list(units_a) + [k for k in units_b if k not in units_a]:
        ma, mb = units_a.get(key), units_b.get(key)
        before, after = (m["category"] if m else ABSENT for m in (ma, mb))
        if before != after:
            transitions[before, after] += 1
            changed.append({"from": before, "to": after, "a": ma, "b": mb})
    return {
        "a": str(names[0]), "b": str(names[1]),
        "headline": {k: {"a": a.get(k), "b": b.get(k)} for k in HEADLINE},
        "outcomes": {n: {"a": a["outcomes"].get(n, 0), "b": b["outcomes"].get(n, 0),
                         "net": b["outcomes"].get(n, 0) - a["outcomes"].get(n, 0)} for n in CATEGORIES},
        "changed": len(changed),
        "fixed": sum(n for (before, after), n in transitions.items() if after == "correct"),
        "broken": sum(n for (before, after), n in transitions.items() if before == "correct"),
        "transitions": [{"from": f, "to": t, "count": n} for (f, t), n in transitions.most_common()],
        "mentions": changed,
    }


def format_compare(diff: dict[str, Any]) -> str:
    """The comparison as lines for people."""
    lines = [f"A {diff['a']}", f"B {diff['b']}"]
    for key, pair in diff["headline"].items():
        if pair["a"] is not None and pair["b"] is not None:
            lines.append(f"  {key:<12}{pair['a']:.4f} -> {pair['b']:.4f} ({pair['b'] - pair['a']:+.4f})")
    lines.append(f"  {diff['changed']} mentions changed outcome: {diff['fixed']} fixed, {diff['broken']} broken")
    lines.append("  category               A       B     net")
    for name, row in diff["outcomes"].items():
        lines.append(f"  {name:<20}{row['a']:>6}  {row['b']:>6}  {row['net']:>+6}")
    for t in diff["transitions"]:
        lines.append(f"  {t['from']:>20} -> {t['to']:<20}{t['count']:>6}")
    return "\n".join(lines)
