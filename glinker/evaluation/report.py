"""``glinker eval --report``: one self-contained HTML file (plots as inline SVG, no script, nothing
fetched when viewed) of an evaluation or of a comparison of two runs.

Every text that comes from the data (documents, KB labels and types, ids, field values, file names)
is HTML-escaped; the plots hold only category names and numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..errors import GlinkerError
from .outcomes import CATEGORIES, LAYER_OF

EXAMPLES = 20
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 68rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.plots figure { margin: 0; flex: 1 1 26rem; max-width: 33rem; } .plots table { flex: 0 0 auto; }
figure svg { width: 100%; height: auto; } figcaption { font-size: 0.85rem; color: #555; }
.example { border-left: 3px solid #ddd; padding: 0.3rem 0.8rem; margin: 0.6rem 0; font-size: 0.9rem; }
.context { font-family: Georgia, serif; line-height: 1.6; overflow-wrap: anywhere; }
mark { background: #fde68a; padding: 0 0.15em; }
.wide { overflow-x: auto; } .meta { color: #444; } .meta code { color: #666; } .ok { color: #16a34a; } .bad { color: #dc2626; }
"""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise GlinkerError('--report needs matplotlib: pip install -e ".[report]" (or pip install matplotlib)') from None


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape("-" if value is None else str(value))


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")


def _entity(entity_id: str | None, label: str | None) -> str:
    if entity_id is None:
        return "none"
    return f"{escape(label or '?')} <code>{escape(str(entity_id))}</code>"


def _gold_text(gold: dict | None) -> str:
    if gold is None:
        return "no gold mention at this span"
    if not gold["ids"]:
        return "NIL"
    return f"{_entity(', '.join(gold['ids']), gold['label'])} ({escape(str(gold['type']))})"


def _predicted_text(pred: dict | None, gold: dict | None) -> str:
    if pred is None:
        return "not found"
    same = gold is not None and (pred["start"], pred["end"]) == (gold["start"], gold["end"])
    span = "" if same else f" at {pred['start']}-{pred['end']}"
    link = _entity(pred["entity_id"], pred["label"]) if pred["entity_id"] else "unlinked"
    best = "" if pred["score"] is None else f"; best {_entity(pred['best_id'], pred['label'])} {pred['score']:.4f}"
    return f"{link}{escape(span)}{best}"


def _example(m: dict, other: dict | None = None) -> str:
    """One mention: its context with the span marked, the gold and predicted entities, the top candidates;
    with ``other`` (the same unit in run A of a comparison), A's prediction and outcome too."""
    context = f"{escape(m['left'])}<mark>{escape(m['text'])}</mark>{escape(m['right'])}"
    ranks = f" · gold rank {m['gold_rank']}, L2 rank {m['l2_rank']}" if m["gold_rank"] or m["l2_rank"] else ""
    candidates = ", ".join(f"{escape(label or '?')} <code>{escape(str(i))}</code> {s:.3f}" for i, label, s in m["candidates"])
    predicted = _predicted_text(m["predicted"], m["gold"])
    if other is not None:
        predicted = (f"A ({escape(other['category'])}): {_predicted_text(other['predicted'], other['gold'])}"
                     f" · B ({escape(m['category'])}): {predicted}")
    return (f'<div class="example"><div class="meta">doc <code>{escape(str(m["doc"]))}</code>{ranks}</div>'
            f'<div class="context">{context}</div>'
            f'<div class="meta">gold: {_gold_text(m["gold"])} · predicted: {predicted}</div>'
            f'<div class="meta">candidates: {candidates or "none"}</div></div>')


def _headline(report: dict[str, Any]) -> str:
    t = report["threshold"]
    spans, inkb, nil = report["spans"], report["inkb"], report["nil"]
    rows = [("documents", report["docs"]), ("gold mentions (in KB / NIL)", f"{report['gold_mentions']} / {report['nil_mentions']}"),
            ("precision", report["precision"]), ("recall (= accuracy@1)", report["recall"]), ("F1", report["f1"]),
            ("InKB P / R / F1", f"{inkb['precision']:.4f} / {inkb['recall']:.4f} / {inkb['f1']:.4f}"),
            ("NIL P / R", f"{nil['precision']:.4f} / {nil['recall']:.4f}"),
            ("spans P / R / F1", f"{spans['precision']:.4f} / {spans['recall']:.4f} / {spans['f1']:.4f}"),
            ("threshold (node)", f"{t['current']} ({t['node']})")]
    if t["best"] is not None:
        best = t["best"]
        rows.append(("best-F1 threshold", f"{best['threshold']} (P {best['precision']:.4f}, R {best['recall']:.4f}, "
                                          f"F1 {best['f1']:.4f})"))
    rows.append(("mode, split", f"{report['mode']}, {report['split'] or 'all'}"))
    return _table(("", "value"), rows)


def _outcomes(report: dict[str, Any]) -> str:
    from . import plots

    counts, check = report["outcomes"], report["outcome_check"]
    rows = [(name, LAYER_OF[name], counts[name]) for name in CATEGORIES] + [("total", "", check["sum"])]
    verdict = '<span class="ok">ok</span>' if check["ok"] else '<span class="bad">MISMATCH</span>'
    check_line = (f"<p>{check['gold']} gold + {check['predicted']} predicted − {check['matched']} matched = "
                  f"{check['units']} units; the categories sum to {check['sum']}: {verdict}</p>")
    html = f"<h2>Outcomes</h2><div class=\"plots\">{_table(('category', 'layer', 'count'), rows)}" \
           f"{_figure(plots.category_bars(counts), 'units per category')}</div>{check_line}"
    for title, key in (("By entity type (gold)", "outcomes_by_type"), ("By " + str(report.get("group_by")), "outcomes_by_group")):
        if key in report:
            table = [(k, *row.values(), sum(row.values())) for k, row in report[key].items()]
            header = ("", *(name.replace("_", " ") for name in CATEGORIES), "total")
            html += f"<h2>{escape(title)}</h2><div class=\"wide\">{_table(header, table)}</div>"
    return html


def _plots(report: dict[str, Any]) -> str:
    from . import plots

    t = report["threshold"]
    figures = []
    if report["recall_curve"]:
        figures.append(_figure(plots.recall_curve(report["recall_curve"]), "L2 recall@k: the ceiling of any L3"))
    if t["sweep"]:
        figures.append(_figure(plots.threshold_sweep(t), "P / R / F1 against the link threshold"))
        figures.append(_figure(plots.reliability(t["reliability"]["bins"]),
                               f"reliability of link scores (expected calibration error {t['reliability']['ece']:.4f})"))
    return f"<h2>Retrieval ceiling and threshold</h2><div class=\"plots\">{''.join(figures)}</div>" if figures else ""


def _examples(title: str, groups: Iterable[tuple[str, Sequence[dict]]], render: Callable[[dict], str]) -> str:
    """Up to EXAMPLES items of each group, spread evenly over it (so over the documents), rendered."""
    html = f"<h2>{escape(title)}</h2>"
    for name, items in groups:
        if items:
            shown = "".join(render(m) for m in items[::max(1, len(items) // EXAMPLES)][:EXAMPLES])
            html += f"<h3>{escape(name)} ({len(items)}, {min(len(items), EXAMPLES)} shown)</h3>{shown}"
    return html


def eval_page(report: dict[str, Any], title: str = "glinker eval") -> str:
    mentions = report["mentions"]
    by_category = [(name, [m for m in mentions if m["category"] == name]) for name in CATEGORIES]
    body = _headline(report) + _outcomes(report) + _plots(report)
    return _page(title, body + _examples("Examples per category", by_category, _example))


def write_report(report: dict[str, Any], path: str | Path, title: str = "glinker eval") -> None:
    Path(path).write_text(eval_page(report, title), encoding="utf-8")


def compare_page(diff: dict[str, Any]) -> str:
    from . import plots

    headline = [(k, v["a"], v["b"]) for k, v in diff["headline"].items()]
    outcomes = [(n, r["a"], r["b"], f"{r['net']:+d}") for n, r in diff["outcomes"].items()]
    bars = plots.compare_bars({n: r["a"] for n, r in diff["outcomes"].items()}, {n: r["b"] for n, r in diff["outcomes"].items()})
    body = (f"<p>A: <code>{escape(diff['a'])}</code><br>B: <code>{escape(diff['b'])}</code></p>"
            + _table(("", "A", "B"), headline)
            + f"<p>{diff['changed']} mentions changed outcome: {diff['fixed']} fixed, {diff['broken']} broken</p>"
            + f"<div class=\"plots\">{_table(('category', 'A', 'B', 'net'), outcomes)}{_figure(bars, 'units per category')}</div>"
            + "<h2>Transitions</h2>" + _table(("from", "to", "mentions"), [(t["from"], t["to"], t["count"]) for t in diff["transitions"]]))
    changes = [(f"{t['from']} → {t['to']}", [m for m in diff["mentions"] if (m["from"], m["to"]) == (t["from"], t["to"])])
               for t in diff["transitions"]]
    return _page("glinker eval: A against B", body + _examples("Changed mentions", changes, _changed))


def _changed(m: dict) -> str:
    if m["b"] is None:
        return _example(m["a"])
    return _example(m["b"], m["a"])


def write_compare_report(diff: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(compare_page(diff), encoding="utf-8")
