"""Linking metrics on hand-made cases (pure functions, no models)."""

import pytest

from glinker.dag import DAGPipeline
from glinker.errors import InputError
from glinker.jobs.evaluate import GoldMention, Prediction, SpanCandidates, Tally, gold_mention, score
from glinker.jobs.pipeline import linking_only
from tests.conftest import ROOT

G = GoldMention
P = Prediction


def test_exact_span_and_entity_are_both_required():
    gold = [[G(0, 5, ("A",)), G(10, 15, ("B",)), G(20, 25, ("C",))]]
    preds = [[P(0, 5, "A"), P(10, 15, "X"), P(19, 25, "C")]]
    r = score(gold, preds)
    assert r["correct_links"] == 1 and r["predicted_links"] == 3 and r["gold_mentions"] == 3
    assert r["precision"] == pytest.approx(1 / 3, abs=1e-4) and r["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["f1"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["spans"]["precision"] == pytest.approx(2 / 3, abs=1e-4)


def test_composite_mention_is_correct_on_any_of_its_ids():
    gold = [[G(0, 25, ("D1", "D2"))]]
    assert score(gold, [[P(0, 25, "D2")]])["recall"] == 1.0
    assert score(gold, [[P(0, 25, "D3")]])["recall"] == 0.0


def test_nil_linked_is_a_false_positive_and_unlinked_is_free():
    gold = [[G(0, 5, ()), G(10, 15, ("B",))]]
    linked = score(gold, [[P(0, 5, "A"), P(10, 15, "B")]])
    assert linked["precision"] == 0.5 and linked["recall"] == 1.0
    assert linked["nil_linked"] == 1 and linked["nil_accuracy"] == 0.0
    unlinked = score(gold, [[P(0, 5, None), P(10, 15, "B")]])
    assert unlinked["precision"] == 1.0 and unlinked["recall"] == 1.0 and unlinked["nil_accuracy"] == 1.0
    missed = score(gold, [[P(10, 15, "B")]])
    assert missed["f1"] == 1.0 and missed["nil_mentions"] == 1 and missed["gold_mentions"] == 1


def test_unlinked_predictions_count_for_spans_not_links():
    r = score([[G(0, 5, ("A",))]], [[P(0, 5, None)]])
    assert r["predicted_links"] == 0 and r["precision"] == 0.0 and r["recall"] == 0.0
    assert r["spans"]["f1"] == 1.0


def test_candidate_recall_at_k_and_missing_spans():
    gold = [[G(0, 5, ("A",)), G(10, 15, ("B",)), G(20, 25, ("C",)), G(30, 35, ())]]
    cands = [[SpanCandidates(0, 5, ("A", "X")), SpanCandidates(10, 15, tuple("XYZWV") + ("B",)),
              SpanCandidates(30, 35, ("N",))]]
    r = score(gold, [[]], cands, ks=(1, 5, 10))
    assert r["recall@k"] == {"1": pytest.approx(1 / 3, abs=1e-4), "5": pytest.approx(1 / 3, abs=1e-4),
                             "10": pytest.approx(2 / 3, abs=1e-4)}


def test_duplicates_count_once_and_documents_add_up():
    tally = Tally()
    tally.add([G(0, 5, ("A",)), G(0, 5, ("A",))], [P(0, 5, "A"), P(0, 5, "B")])
    tally.add([G(3, 4, ("C",))], [])
    r = tally.report()
    assert (r["docs"], r["gold_mentions"], r["predicted_links"], r["correct_links"]) == (2, 2, 1, 1)
    assert "recall@k" not in r


def test_empty_input_gives_zeros_and_mismatched_lengths_are_refused():
    assert score([], [])["f1"] == 0.0
    with pytest.raises(InputError):
        score([[]], [])


def test_gold_mention_reads_bc5cdr_rows():
    assert gold_mention({"start": 1, "end": 4, "entity_id": "NIL", "entity_ids": ["NIL"]}).nil
    assert gold_mention({"start": 1, "end": 4, "entity_id": "D1"}).ids == ("D1",)
    assert gold_mention({"start": 1, "end": 4, "entity_id": "D1|D2", "entity_ids": ["D1", "D2"]}).ids == ("D1", "D2")


def test_linking_only_rewires_l1_outputs_to_input_entities():
    pipeline = linking_only(DAGPipeline.from_yaml(ROOT / "configs" / "default.yaml"))
    assert [n.processor for n in pipeline.nodes] == ["l2_chain", "l3_batch", "l0_aggregator"]
    l2, _, l0 = pipeline.nodes
    assert (l2.inputs["mentions"].source, l2.inputs["mentions"].fields) == ("$input", "entities")
    assert (l0.inputs["l1_entities"].source, l0.inputs["l1_entities"].fields) == ("$input", "entities")
    assert "l1" not in l0.requires
    already = DAGPipeline.from_yaml(ROOT / "configs" / "linking_only.yaml")
    assert linking_only(already) is already
