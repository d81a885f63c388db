"""L1 merge: the mentions of two L1 nodes as one list (e.g. GLiNER's and the gazetteer's).

Overlapping spans are resolved by ``overlaps``: ``first`` keeps the ``first`` input's mention and
adds only the ``second`` input's mentions that overlap none of them; ``longest`` keeps the longest of
overlapping spans (the ``first`` input's on a tie); ``all`` keeps every distinct span.
"""

from __future__ import annotations

from bisect import bisect_left

from glinker.config import L1MergeConfig
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.types import L1Output, Mention


def _overlaps(kept: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps a span of ``kept`` (sorted, pairwise disjoint)."""
    i = bisect_left(kept, (start, end))
    return (i > 0 and kept[i - 1][1] > start) or (i < len(kept) and kept[i][0] < end)


def merge(first: list[Mention], second: list[Mention], overlaps: str) -> list[Mention]:
    """One text's mentions of both inputs, sorted by position (then longest first)."""
    ranked = [(m, 0) for m in first] + [(m, 1) for m in second]
    if overlaps == "longest":
        ranked.sort(key=lambda pair: (pair[0].start - pair[0].end, pair[1]))
    seen: set[tuple[int, int]] = set()
    kept_spans: list[tuple[int, int]] = []
    kept: list[Mention] = []
    for mention, _ in ranked:
        span = (mention.start, mention.end)
        if span in seen or (overlaps != "all" and _overlaps(kept_spans, *span)):
            continue
        seen.add(span)
        kept.append(mention)
        if overlaps != "all":
            kept_spans.insert(bisect_left(kept_spans, span), span)
    return sorted(kept, key=lambda m: (m.start, -m.end))


class MergedMentions:
    def __init__(self, config: L1MergeConfig):
        self.config = config

    def __call__(self, first: list[list[Mention]], second: list[list[Mention]]) -> L1Output:
        return L1Output([merge(a, b, self.config.overlaps) for a, b in zip(first, second, strict=True)])


CONTRACT = LayerContract(config=L1MergeConfig, inputs={"first": Socket(Mention), "second": Socket(Mention)},
                         output=L1Output)


def build(config: L1MergeConfig, setup: LayerSetup) -> MergedMentions:
    return MergedMentions(config)
