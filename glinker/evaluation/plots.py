"""The report's plots, drawn with matplotlib (no pyplot state) and returned as inline SVG markup.

Text is drawn as paths, so the SVG needs no font and holds no text from the data; the plots show
only category names and numbers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from .outcomes import CATEGORIES

COLORS = {"correct": "#16a34a", "missed_mention": "#f59e0b", "partial_span": "#fbbf24", "spurious_mention": "#fcd34d",
          "not_in_candidates": "#dc2626", "wrong_rank": "#7c3aed", "linked_nil": "#db2777",
          "threshold_too_high": "#0ea5e9"}
SIZE = (6.4, 3.4)


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def category_bars(counts: dict[str, int]) -> str:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    names = list(CATEGORIES)[::-1]
    bars = ax.barh(names, [counts[n] for n in names], color=[COLORS[n] for n in names])
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.set_xlabel("mentions (gold and predicted units)")
    ax.margins(x=0.12)
    return _svg(fig)


def compare_bars(a: dict[str, int], b: dict[str, int]) -> str:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    rows = list(range(len(CATEGORIES)))[::-1]
    ax.barh([r + 0.2 for r in rows], [a[n] for n in CATEGORIES], height=0.4, label="A", color="#94a3b8")
    ax.barh([r - 0.2 for r in rows], [b[n] for n in CATEGORIES], height=0.4, label="B", color="#2563eb")
    ax.set_yticks(rows, list(CATEGORIES))
    ax.set_xlabel("mentions")
    ax.legend(fontsize=8)
    return _svg(fig)


def recall_curve(curve: Sequence[float]) -> str:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    ks = list(range(1, len(curve) + 1))
    ax.plot(ks, curve, marker="o", markersize=3, color="#2563eb")
    ax.set_xlabel("k (L2 candidates)")
    ax.set_ylabel("recall@k")
    ax.set_ylim(min(curve, default=0.0) - 0.02, 1.0)
    ax.grid(alpha=0.3)
    if curve:
        ax.annotate(f"@1 {curve[0]:.3f}", (1, curve[0]), textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.annotate(f"@{len(curve)} {curve[-1]:.3f}", (len(curve), curve[-1]), textcoords="offset points",
                    xytext=(-50, 6), fontsize=8)
    return _svg(fig)


def threshold_sweep(threshold: dict[str, Any]) -> str:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    rows = threshold["sweep"][::-1]  # lowest threshold first; a row holds from the next lower score up to its own
    xs = [0.0] + [r["threshold"] for r in rows]
    for key, color in (("precision", "#16a34a"), ("recall", "#dc2626"), ("f1", "#2563eb")):
        ys = [r[key] for r in rows]
        ax.step(xs, ys[:1] + ys, where="pre", label=key, color=color, linewidth=1.5)
    if threshold["current"] is not None:
        ax.axvline(threshold["current"], color="#475569", linestyle="--", linewidth=1, label="current")
    if threshold["best"] is not None:
        ax.axvline(threshold["best"]["threshold"], color="#2563eb", linestyle=":", linewidth=1.5, label="best F1")
    ax.set_xlabel("link threshold")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _svg(fig)


def reliability(bins: Sequence[dict]) -> str:
    fig = Figure(figsize=(SIZE[0], SIZE[1] * 1.4))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in bins if b["count"]]
    top.plot([0, 1], [0, 1], color="#94a3b8", linestyle="--", linewidth=1, label="perfectly calibrated")
    top.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", color="#2563eb",
             label="share right")
    top.set_ylabel("share of best candidates right")
    top.set_ylim(0, 1.02)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    bottom.bar([b["low"] for b in bins], [b["count"] for b in bins], width=width * 0.9, align="edge", color="#94a3b8")
    bottom.set_xlabel("link score")
    bottom.set_ylabel("mentions")
    bottom.set_xlim(0, 1)
    return _svg(fig)
