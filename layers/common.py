"""Small helpers every layer uses to shape its output."""

from __future__ import annotations

from collections.abc import Iterable

from glinker.types import Mention


def clean_mentions(mentions: Iterable[Mention], min_length: int) -> list[Mention]:
    """Drop short and duplicate spans; sort by position (then longest first)."""
    seen = set()
    kept = []
    for m in sorted(mentions, key=lambda m: (m.start, -m.end)):
        if len(m.text.strip()) < min_length or (m.start, m.end) in seen:
            continue
        seen.add((m.start, m.end))
        kept.append(m)
    return kept
