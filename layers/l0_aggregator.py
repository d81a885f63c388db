"""L0: one record per mention, joining its L2 candidates and its L3/L4 link.

A link made by L3/L4 carries the index of its mention, so it joins its mention directly; a link made
outside the pipeline (no index) is matched by span, within ``position_tolerance`` characters. With
``strict_matching`` only mentions given by L1 (or the input) are reported, matched by span since
they may come from outside; otherwise linked spans that match no mention are reported as well.
Relations (from ``l5_relex``) are carried per text, each end with its mention's final link.
"""

from __future__ import annotations

import dataclasses

from glinker.config import L0Config
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError
from glinker.types import L0Entity, L0Output, L3Entity, LinkedEntity, Mention, MentionCandidates, Relation


class Aggregator:
    def __init__(self, config: L0Config):
        self.config = config

    def __call__(
        self,
        l2_candidates: list[list[MentionCandidates]],
        l3_entities: list[list[L3Entity]] | None = None,
        l1_entities: list[list[Mention]] | None = None,
        texts: list[str] | None = None,
        relations: list[list[Relation]] | None = None,
    ) -> L0Output:
        n = len(l2_candidates)
        for name, value in (("l3_entities", l3_entities), ("l1_entities", l1_entities), ("texts", texts),
                            ("relations", relations)):
            if value is not None and len(value) != n:
                raise InputError(f"l0_aggregator: {name} has {len(value)} texts, l2_candidates {n}")
        for name, value in (("l2_candidates", l2_candidates), ("l3_entities", l3_entities), ("l1_entities", l1_entities)):
            if value is not None:
                _check_spans(name, value, texts)
        out = []
        for t in range(n):
            links = list(l3_entities[t]) if l3_entities is not None else []
            out.append(self._aggregate(l2_candidates[t], links, l1_entities[t] if l1_entities is not None else None))
        if relations is not None:
            relations = [_grounded(per_text, records) for per_text, records in zip(relations, out, strict=True)]
        return L0Output.counted(out, relations)

    def _aggregate(self, groups: list[MentionCandidates], links: list[L3Entity], l1: list[Mention] | None) -> list[L0Entity]:
        c = self.config
        allowed = {(m.start, m.end) for m in l1} if (l1 is not None and c.strict_matching) else None
        kept = [j for j, g in enumerate(groups) if allowed is None or (g.mention.start, g.mention.end) in allowed]
        chosen = self._match(groups, kept, links)
        records = [self._record(groups[j].mention, groups[j].candidates, chosen.get(j), j) for j in kept]
        if not c.strict_matching:
            used = {(link.start, link.end) for link in chosen.values()}
            for link in links:
                if (link.start, link.end) not in used and link.entity_id is not None:
                    used.add((link.start, link.end))
                    records.append(self._record(Mention(link.text, link.start, link.end), [], link, None))
        records = [r for r in records if c.include_unlinked or r.is_linked]
        records.sort(key=lambda r: (r.mention_start, -r.mention_end))
        return records

    def _match(self, groups: list[MentionCandidates], kept: list[int], links: list[L3Entity]) -> dict[int, L3Entity]:
        """The link of each kept mention: the one that carries its index; for links made outside the
        pipeline, the first at its exact span, else the nearest within ``position_tolerance``. Each
        link serves one mention."""
        wanted = set(kept)
        chosen: dict[int, L3Entity] = {}
        for link in links:
            if link.mention_index in wanted and link.mention_index not in chosen:
                chosen[link.mention_index] = link
        outside = [link for link in links if link.mention_index is None]
        by_span: dict[tuple[int, int], L3Entity] = {}
        for link in outside:
            by_span.setdefault((link.start, link.end), link)
        used: set[tuple[int, int]] = set()
        for j in kept:  # first the mention at the link's exact span ...
            span = (groups[j].mention.start, groups[j].mention.end)
            if j not in chosen and span not in used and span in by_span:
                chosen[j] = by_span[span]
                used.add(span)
        for j in kept:  # ... then, within the tolerance, a mention that has none
            if j not in chosen and (link := self._near(outside, groups[j].mention, used)) is not None:
                used.add((link.start, link.end))
                chosen[j] = link
        return chosen

    def _near(self, links: list[L3Entity], m: Mention, used: set) -> L3Entity | None:
        tol = self.config.position_tolerance
        close = [lk for lk in links if (lk.start, lk.end) not in used
                 and abs(lk.start - m.start) <= tol and abs(lk.end - m.end) <= tol]
        return min(close, key=lambda lk: abs(lk.start - m.start) + abs(lk.end - m.end), default=None)

    def _record(self, m: Mention, candidates: list, link: L3Entity | None, index: int | None) -> L0Entity:
        c = self.config
        linked = None
        if link is not None and link.entity_id is not None and link.score >= c.min_confidence:
            linked = LinkedEntity(link.entity_id, link.label, link.score, link.score, link.start, link.end, link.text)
        shown = candidates
        if not c.return_all_candidates and candidates:
            top = linked.entity_id if linked else candidates[0].entity_id
            shown = [cand for cand in candidates if cand.entity_id == top][:1]
        if linked is not None:
            stage = f"{link.stage}_linked"
        elif candidates:
            stage = "l2_found"
        else:
            stage = "l1_only"
        return L0Entity(
            mention_text=m.text,
            mention_start=m.start,
            mention_end=m.end,
            label=m.label,
            left_context=m.left_context,
            right_context=m.right_context,
            candidates=shown,
            num_candidates=len(candidates),
            linked_entity=linked,
            is_linked=linked is not None,
            candidate_scores=dict(link.class_probs) if link is not None else {},
            pipeline_stage=stage,
            mention_index=index,
        )


def _grounded(relations: list[Relation], records: list[L0Entity]) -> list[Relation]:
    """The relations with each end's entity id set to its mention's final link (None: unlinked or not reported)."""
    linked = {r.mention_index: r.linked_entity.entity_id for r in records if r.is_linked}

    def end(e):
        return dataclasses.replace(e, entity_id=linked.get(e.mention_index))

    return [dataclasses.replace(r, head=end(r.head), tail=end(r.tail)) for r in relations]


def _check_spans(name: str, per_text: list[list], texts: list[str] | None) -> None:
    """Every span must index its text (or, without texts, at least be consistent with its own text)."""
    for t, items in enumerate(per_text):
        for j, item in enumerate(items):
            m = item.mention if isinstance(item, MentionCandidates) else item
            start, end, surface = m.start, m.end, m.text
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
                raise InputError(f"l0_aggregator: {name}[{t}][{j}]: span {start!r}:{end!r} is empty or negative")
            if texts is not None and (end > len(texts[t]) or texts[t][start:end] != surface):
                raise InputError(f"l0_aggregator: {name}[{t}][{j}]: {surface!r} is not text {t} at {start}:{end} "
                                 f"(length {len(texts[t])})")
            if texts is None and len(surface) != end - start:
                raise InputError(f"l0_aggregator: {name}[{t}][{j}]: {surface!r} does not fit span {start}:{end}")


CONTRACT = LayerContract(
    config=L0Config,
    inputs={
        "l2_candidates": Socket(MentionCandidates),
        "l3_entities": Socket(L3Entity, required=False),
        "l1_entities": Socket(Mention, required=False),
        "texts": Socket(required=False),
        "relations": Socket(Relation, required=False),
    },
    output=L0Output,
)


def build(config: L0Config, setup: LayerSetup) -> Aggregator:
    return Aggregator(config)
