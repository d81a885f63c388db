"""Property-based tests of L0 aggregation on hand-built layer outputs: overlapping, nearby, duplicate
and out-of-range spans, links to any id.

Property: an InputError naming the list and index of a span that does not index its text, or records
that index the text, one per kept mention, each L3 link serving at most one record.
"""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import InputError
from glinker.config import L0Config
from glinker.types import Candidate, L3Entity, Mention, MentionCandidates
from layers.l0_aggregator import Aggregator

IDS = ["A", "B", "C", "D"]
BAD = re.compile(r"^l0_aggregator: (l1_entities|l2_candidates|l3_entities)\[(\d+)\]\[(\d+)\]: ")


@st.composite
def spans(draw, text: str, hostile: bool):
    """(start, end, surface): usually a span of ``text``; if hostile, possibly outside it or mislabelled."""
    n = len(text)
    if hostile and draw(st.integers(0, 9)) == 0:
        start, end = draw(st.integers(-3, n + 3)), draw(st.integers(-3, n + 3))
        surface = draw(st.one_of(st.just(text[max(start, 0):max(end, 0)]), st.text(max_size=4)))
        return start, end, surface
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start + 1, min(n, start + 12)))
    return start, end, text[start:end]


@st.composite
def layer_outputs(draw):
    texts = draw(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3))
    hostile = draw(st.booleans())
    l1, l2, l3 = [], [], []
    for text in texts:
        groups = []
        for start, end, surface in draw(st.lists(spans(text, hostile), max_size=6)):
            ids = draw(st.lists(st.sampled_from(IDS), max_size=3, unique=True))
            groups.append(MentionCandidates(Mention(surface, start, end), [Candidate(i, i.lower()) for i in ids]))
        l2.append(groups)
        mentions = [g.mention for g in groups if draw(st.integers(0, 4))]
        mentions += [Mention(s, a, b) for a, b, s in draw(st.lists(spans(text, hostile), max_size=2))]
        l1.append(mentions)
        links = []
        for start, end, surface in draw(st.lists(spans(text, hostile), max_size=6)):
            entity = draw(st.one_of(st.none(), st.sampled_from(IDS + ["Z"])))
            score = draw(st.floats(0, 1))
            links.append(L3Entity(surface, start, end, entity, (entity or "").lower(), score, {entity: score} if entity else {}))
        l3.append(links)
    return texts, l1, l2, l3


configs = st.builds(L0Config, min_confidence=st.floats(0, 1), include_unlinked=st.booleans(),
                    return_all_candidates=st.booleans(), strict_matching=st.booleans(),
                    position_tolerance=st.integers(0, 3))


def valid_span(m, text: str) -> bool:
    return 0 <= m.start < m.end <= len(text) and text[m.start : m.end] == m.text


@given(layer_outputs(), configs, st.booleans(), st.booleans())
def test_l0_records_index_the_text_or_the_bad_span_is_named(outputs, config, pass_l1, pass_texts):
    texts, l1, l2, l3 = outputs
    l1 = l1 if pass_l1 else None
    given_texts = texts if pass_texts else None
    everything = [("l2_candidates", [[g.mention for g in groups] for groups in l2]), ("l3_entities", l3)]
    if l1 is not None:
        everything.append(("l1_entities", l1))
    invalid = {(name, t, j): m for name, per_text in everything for t, items in enumerate(per_text)
               for j, m in enumerate(items) if not valid_span(m, texts[t])}
    try:
        out = Aggregator(config)(l2, l3, l1, given_texts)
    except InputError as exc:
        where = BAD.match(str(exc))
        assert where and (where[1], int(where[2]), int(where[3])) in invalid, str(exc)
        return
    # without the texts only a span past the end of its text, with a surface of the right length, goes unseen
    assert all(not pass_texts and 0 <= m.start < m.end and len(m.text) == m.end - m.start for m in invalid.values())
    for t, records in enumerate(out.entities):
        if any(where[1] == t for where in invalid):
            continue
        text = texts[t]
        for r in records:
            assert text[r.mention_start : r.mention_end] == r.mention_text
            if r.linked_entity is not None:
                assert r.linked_entity.score >= config.min_confidence
                assert text[r.linked_entity.start : r.linked_entity.end] == r.linked_entity.matched_text
        served = [(r.linked_entity.start, r.linked_entity.end) for r in records if r.linked_entity is not None]
        assert len(served) == len(set(served)), "one L3 link was given to two records"
        allowed = {(m.start, m.end) for m in l1[t]} if l1 is not None and config.strict_matching else None
        kept = {(g.mention.start, g.mention.end) for g in l2[t]
                if allowed is None or (g.mention.start, g.mention.end) in allowed}
        if config.include_unlinked:
            assert kept <= {(r.mention_start, r.mention_end) for r in records}, "a mention was lost"
        assert records == sorted(records, key=lambda r: (r.mention_start, -r.mention_end))
    assert out.stats["total_mentions"] == sum(map(len, out.entities))
    assert out.stats["linked"] == sum(r.is_linked for rs in out.entities for r in rs)


def test_a_link_at_a_nearby_span_never_serves_two_mentions():
    """Regression: the mention before took the link of the next mention as a near match, and the next
    mention then took it again by exact span, so one L3 decision linked two records."""
    text = "New York City"
    groups = [MentionCandidates(Mention.from_span(text, 0, 8), [Candidate("NY", "ny")]),
              MentionCandidates(Mention.from_span(text, 0, 9), [Candidate("NY", "ny")])]
    links = [L3Entity("New York ", 0, 9, "NY", "ny", 0.9)]
    records = Aggregator(L0Config(position_tolerance=2))([groups], [links], None, [text]).entities[0]
    assert [(r.mention_end, r.is_linked) for r in records] == [(9, True), (8, False)]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (L3Entity("Paris", 30, 35, "P", "p", 0.9), r"l3_entities\[0\]\[0\]: 'Paris' is not text 0 at 30:35 \(length 5\)"),
        (L3Entity("", 3, 3, "P", "p", 0.9), r"l3_entities\[0\]\[0\]: span 3:3 is empty or negative"),
        (L3Entity("aris", -1, 3, "P", "p", 0.9), r"span -1:3 is empty or negative"),
        (L3Entity("aris", 1, 9, "P", "p", 0.9), r"'aris' is not text 0 at 1:9 \(length 5\)"),
    ],
)
def test_out_of_range_spans_are_named(link, message):
    """Regression: a link outside the text became a record whose offsets did not index it."""
    groups = [[MentionCandidates(Mention.from_span("Paris", 0, 5), [Candidate("P", "p")])]]
    with pytest.raises(InputError, match=message):
        Aggregator(L0Config(strict_matching=False))(groups, [[link]], None, ["Paris"])
