"""The outcome and threshold parts of ``glinker eval``'s text report."""

from __future__ import annotations

from typing import Any

from .outcomes import CATEGORIES, LAYER_OF

TYPES_SHOWN = 8
SHORT = {"correct": "correct", "missed_mention": "missed", "partial_span": "partial", "spurious_mention": "spurious",
         "not_in_candidates": "no_cand", "wrong_rank": "rank", "linked_nil": "nil_link", "threshold_too_high": "thresh"}


def outcome_lines(report: dict[str, Any]) -> list[str]:
    """The category table, the check that it adds up, the breakdowns and InKB / NIL figures."""
    counts, check = report["outcomes"], report["outcome_check"]
    lines = ["outcomes      category             layer         count"]
    lines += [f"              {name:<20} {LAYER_OF[name]:<13} {counts[name]:>5}" for name in CATEGORIES]
    verdict = "ok" if check["ok"] else "MISMATCH"
    lines.append(f"  check       {check['gold']} gold + {check['predicted']} predicted - {check['matched']} matched "
                 f"= {check['units']} units; categories sum to {check['sum']}: {verdict}")
    lines += _breakdown_lines("by type", report["outcomes_by_type"])
    if "outcomes_by_group" in report:
        lines += _breakdown_lines(f"by {report['group_by']}", report["outcomes_by_group"])
    inkb, nil = report["inkb"], report["nil"]
    lines.append(f"  InKB        P {inkb['precision']:.4f}  R {inkb['recall']:.4f}  F1 {inkb['f1']:.4f}"
                 f"   NIL P {nil['precision']:.4f}  R {nil['recall']:.4f}")
    curve = report["recall_curve"]
    if curve:
        shown = sorted({1, 2, 3, 5, 10, 20, len(curve)} & set(range(1, len(curve) + 1)))
        lines.append("  L2 ceiling  " + "  ".join(f"@{k} {curve[k - 1]:.4f}" for k in shown))
    return lines


def _breakdown_lines(title: str, table: dict[str, dict[str, int]]) -> list[str]:
    lines = [f"  {title:<24}" + "".join(f"{SHORT[name]:>9}" for name in CATEGORIES)]
    for key, row in list(table.items())[:TYPES_SHOWN]:
        lines.append(f"    {key[:22]:<22}" + "".join(f"{row[name]:>9}" for name in CATEGORIES))
    if len(table) > TYPES_SHOWN:
        lines.append(f"    ... {len(table) - TYPES_SHOWN} more (see --json or --report)")
    return lines


def threshold_lines(report: dict[str, Any]) -> list[str]:
    """The current and the best-F1 threshold, and the calibration error of the scores."""
    t = report["threshold"]
    if t["current"] is None or t["best"] is None:
        return ["  threshold   no scored links (no deciding layer, or no mention scored)"]
    now, best = t["at_current"], t["best"]
    return [f"  threshold   {t['node']}: current {t['current']:g} (P {now['precision']:.4f}  R {now['recall']:.4f}  "
            f"F1 {now['f1']:.4f}); best F1 at {best['threshold']:g} (P {best['precision']:.4f}  "
            f"R {best['recall']:.4f}  F1 {best['f1']:.4f}, {best['links']} links)",
            f"  calibration expected calibration error {t['reliability']['ece']:.4f} over "
            f"{sum(b['count'] for b in t['reliability']['bins'])} scored mentions"]
