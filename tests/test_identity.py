"""Identity travels with the batch: links and records carry their mention's index, candidates their KB
row, and per-text facts (abbreviations) are found once per batch whichever layers need them."""

import pytest

from glinker import DAGExecutor, InputError
from glinker import text as text_module
from glinker.config import L0Config
from glinker.types import Candidate, L3Entity, L3Output, Mention, MentionCandidates
from layers.l0_aggregator import Aggregator
from tests.conftest import model_free_config

TEXT = "Paris met Paris"
KB = [{"entity_id": "D2", "label": "Duchenne muscular dystrophy"}, {"entity_id": "K0", "label": "Kidney Diseases"},
      {"entity_id": "M1", "label": "DMD"}]


def groups(*spans):
    return [MentionCandidates(Mention.from_span(TEXT, s, e), [Candidate("P1", "p1"), Candidate("P2", "p2")])
            for s, e in spans]


def test_each_mention_gets_its_own_link_even_at_the_same_span():
    """Mentions given twice at one span (external input may do that) are two mentions: each L3 link
    joins the mention it was made for. Links made outside the pipeline are still matched by span."""
    mentions = groups((0, 5), (0, 5), (10, 15))
    links = L3Output.aligned([[L3Entity("Paris", 0, 5, "P1", "p1", 0.9), L3Entity("Paris", 0, 5, "P2", "p2", 0.8),
                               L3Entity("Paris", 10, 15, None, "", 0.1)]]).entities
    assert [link.mention_index for link in links[0]] == [0, 1, 2]
    records = Aggregator(L0Config())([mentions], links, None, [TEXT]).entities[0]
    assert [(r.mention_index, r.linked_entity and r.linked_entity.entity_id) for r in records] == [
        (0, "P1"), (1, "P2"), (2, None)]
    by_span = [[L3Entity(x.text, x.start, x.end, x.entity_id, x.label, x.score) for x in links[0]]]
    records = Aggregator(L0Config())([mentions], by_span, None, [TEXT]).entities[0]
    assert [r.linked_entity and r.linked_entity.entity_id for r in records] == ["P1", None, None]


def test_reranker_refuses_links_of_other_mentions():
    from layers.l4_reranker import _l3_orders

    mentions = groups((0, 5), (10, 15))
    aligned = L3Output.aligned([[L3Entity("Paris", 0, 5, "P2", "p2", 0.9, {"P2": 0.9}),
                                 L3Entity("Paris", 10, 15, "P1", "p1", 0.9, {"P1": 0.9})]]).entities
    assert [list(o) for o in _l3_orders([mentions], aligned)[0]] == [[1, 0], [0, 1]]
    swapped = [list(reversed(aligned[0]))]
    with pytest.raises(InputError, match="the L3 results do not match the mentions"):
        _l3_orders([mentions], swapped)


@pytest.fixture
def executor():
    ex = DAGExecutor(model_free_config())
    ex.load_entities(KB)
    return ex


def test_candidates_carry_their_kb_row_and_records_their_mention(executor):
    ctx = executor.execute({"texts": ["Kidney diseases and DMD."]})
    store = executor.kb.store
    for group in ctx.get("l2_result").candidates[0]:
        assert [c.kb_row for c in group.candidates] == [store.row_of(c.entity_id) for c in group.candidates]
    records = ctx.get("l0_result").entities[0]
    assert [(r.mention_text, r.mention_index) for r in records] == [("Kidney diseases", 0), ("DMD", 1)]


def test_abbreviations_are_found_once_per_text_per_batch(executor, monkeypatch):
    """The gazetteer (L1) and the L2 query expansion both need each text's abbreviations."""
    import glinker.kb.gazetteer

    calls = []
    real = text_module.abbreviations

    def counted(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(text_module, "abbreviations", counted)
    monkeypatch.setattr(glinker.kb.gazetteer, "find_abbreviations", counted)
    texts = ["Duchenne muscular dystrophy (DMD) is rare. In DMD, muscles weaken.", "Kidney diseases."]
    found = executor.execute({"texts": texts}).get("l2_result").candidates
    assert sorted(calls) == sorted(texts)
    assert [g.mention.text for g in found[0]] == ["Duchenne muscular dystrophy", "DMD", "DMD"]
    assert all("D2" in [c.entity_id for c in g.candidates] for g in found[0])
