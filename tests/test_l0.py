"""L0 aggregation rules, on hand-made layer outputs (no models)."""

import pytest

from glinker.config import L0Config
from glinker.types import Candidate, L3Entity, Mention, MentionCandidates
from layers.l0_aggregator import Aggregator

TEXT = "Paris and Texas and Lyon"


def group(start, end, *ids):
    m = Mention.from_span(TEXT, start, end)
    return MentionCandidates(m, [Candidate(entity_id=i, label=i.lower(), score=0.9) for i in ids])


def link(start, end, entity_id, score, probs=None):
    return L3Entity(TEXT[start:end], start, end, entity_id, (entity_id or "").lower(), score,
                    probs or ({entity_id: score} if entity_id else {}))


@pytest.fixture
def layers():
    l2 = [[group(0, 5, "P1", "P2"), group(10, 15, "T1"), group(20, 24)]]
    l3 = [[link(0, 5, "P2", 0.8, {"P1": 0.3, "P2": 0.8}), link(10, 15, "T1", 0.4), link(20, 24, None, 0.0)]]
    l1 = [[g.mention for g in l2[0]]]
    return l1, l2, l3


def run(layers, **config):
    l1, l2, l3 = layers
    return Aggregator(L0Config(**config))(l2, l3, l1)


def test_default_records(layers):
    out = run(layers)
    records = out.entities[0]
    assert [(r.mention_text, r.is_linked, r.pipeline_stage) for r in records] == [
        ("Paris", True, "l3_linked"), ("Texas", True, "l3_linked"), ("Lyon", False, "l1_only"),
    ]
    paris = records[0]
    assert paris.linked_entity.entity_id == "P2" and paris.candidate_scores == {"P1": 0.3, "P2": 0.8}
    assert paris.num_candidates == 2 and [c.entity_id for c in paris.candidates] == ["P2"]
    assert out.stats == {"total_texts": 1, "total_mentions": 3, "linked": 2, "unlinked": 1, "linking_rate": 2 / 3}


def test_min_confidence_and_include_unlinked(layers):
    records = run(layers, min_confidence=0.5).entities[0]
    assert [r.is_linked for r in records] == [True, False, False]
    assert records[1].pipeline_stage == "l2_found"
    records = run(layers, min_confidence=0.5, include_unlinked=False).entities[0]
    assert [r.mention_text for r in records] == ["Paris"]


def test_return_all_candidates(layers):
    assert [c.entity_id for c in run(layers, return_all_candidates=True).entities[0][0].candidates] == ["P1", "P2"]


def test_position_tolerance(layers):
    l1, l2, _ = layers
    shifted = [[link(1, 5, "P1", 0.9)]]
    assert Aggregator(L0Config(position_tolerance=2))(l2, shifted, l1).entities[0][0].is_linked
    assert not Aggregator(L0Config(position_tolerance=0))(l2, shifted, l1).entities[0][0].is_linked


def test_strict_vs_loose_matching(layers):
    l1, l2, l3 = layers
    extra = [l3[0] + [link(6, 9, "X", 0.9)]]
    strict = Aggregator(L0Config(strict_matching=True))(l2, extra, l1).entities[0]
    loose = Aggregator(L0Config(strict_matching=False))(l2, extra, l1).entities[0]
    assert "and" not in [r.mention_text for r in strict]
    assert [r.mention_text for r in loose] == ["Paris", "and", "Texas", "Lyon"]
    only_l1 = [[l1[0][0]]]
    assert [r.mention_text for r in Aggregator(L0Config(strict_matching=True))(l2, l3, only_l1).entities[0]] == ["Paris"]


def test_misaligned_inputs_are_errors(layers):
    l1, l2, l3 = layers
    with pytest.raises(ValueError, match="l3_entities has 2 texts, l2_candidates 1"):
        Aggregator(L0Config())(l2, l3 + l3, l1)
